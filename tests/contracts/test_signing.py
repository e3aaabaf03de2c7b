import json

import pytest
from joserfc import jws

from contracts import signing
from contracts.errors import SignatureInvalid
from contracts.v1 import ErrorBody


def test_canonical_json_is_key_order_independent() -> None:
    assert signing.canonical_json({"b": 1, "a": [1.0, 2.5]}) == b'{"a":[1,2.5],"b":1}'
    assert signing.digest({"a": 1, "b": 2}) == signing.digest({"b": 2, "a": 1})


def test_sign_and_verify_roundtrip() -> None:
    key = signing.generate_key()
    body = ErrorBody(code="x", message="नमस्ते")
    token = signing.sign(body, key)
    pub = signing.load_public_key(signing.public_jwk(key))
    assert signing.verify_model(token, pub, ErrorBody) == body
    assert signing.unverified_header(token)["kid"] == signing.key_id(key)


def test_forged_and_tampered_tokens_are_refused() -> None:
    key, other = signing.generate_key(), signing.generate_key()
    token = signing.sign(ErrorBody(code="x", message="y"), key)
    with pytest.raises(SignatureInvalid):
        signing.verify(token, signing.load_public_key(signing.public_jwk(other)))
    head, payload, sig = token.split(".")
    tampered = f"{head}.{payload[:-2]}AA.{sig}"
    with pytest.raises(SignatureInvalid):
        signing.verify(tampered, key)
    with pytest.raises(SignatureInvalid):
        signing.verify("not-a-jws", key)


def test_sign_writes_the_bytes_joserfc_writes() -> None:
    # `sign` builds the compact JWS itself (faster); it must stay byte-for-byte joserfc's.
    for message in ("नमस्ते", "ü \u2028 \x00", "plain"):
        key = signing.generate_key()
        model = ErrorBody(code="x", message=message)
        header = {"alg": signing.ALGORITHM, "kid": signing.key_id(key)}
        reference = jws.serialize_compact(
            header, signing.canonical_json(model), key, algorithms=[signing.ALGORITHM]
        )
        assert signing.sign(model, key) == reference


def _token(header: dict[str, object], payload: bytes, key: object) -> str:
    """A compact JWS with any header, signed by `key` (to test what `verify` refuses)."""
    protected = signing._b64(json.dumps(header).encode())
    signing_input = protected + b"." + signing._b64(payload)
    signature = key.private_key.sign(signing_input)  # type: ignore[attr-defined]
    return (signing_input + b"." + signing._b64(signature)).decode()


def test_verify_agrees_with_joserfc_on_valid_tokens() -> None:
    # `verify` checks compact tokens itself (faster); on valid tokens it must agree with
    # joserfc's own deserialisation, extra header parameters included.
    key = signing.generate_key()
    pub = signing.load_public_key(signing.public_jwk(key))
    for header in ({"alg": "Ed25519"}, {"alg": "Ed25519", "kid": "k", "typ": "JWT"}):
        token = _token(header, b'{"a":1}', key)
        reference = jws.deserialize_compact(token, pub, algorithms=[signing.ALGORITHM])
        assert signing.verify(token, pub) == reference.payload == b'{"a":1}'


@pytest.mark.parametrize(
    "header",
    [
        {"alg": "none"},
        {"alg": "EdDSA"},
        {"kid": "no-alg"},
        {"alg": "Ed25519", "crit": ["exp"], "exp": 1},
        {"alg": "Ed25519", "b64": False, "crit": ["b64"]},
        ["alg", "Ed25519"],
    ],
)
def test_verify_refuses_other_algorithms_and_extensions(header: object) -> None:
    key = signing.generate_key()
    token = _token(header, b"{}", key)  # type: ignore[arg-type]
    with pytest.raises(SignatureInvalid):
        signing.verify(token, signing.load_public_key(signing.public_jwk(key)))


def test_verify_refuses_malformed_compact_tokens() -> None:
    key = signing.generate_key()
    pub = signing.load_public_key(signing.public_jwk(key))
    token = signing.sign(ErrorBody(code="x", message="y"), key)
    head, payload, sig = token.split(".")
    malformed = [
        f"{head}.{payload}",  # two parts
        f"{token}.{sig}",  # four parts
        f"{head}=.{payload}.{sig}",  # padding is not base64url of a compact JWS
        f"{head}.{payload}.{sig[:-1]}+",  # outside the base64url alphabet
        f"{head}.{payload} .{sig}",  # whitespace that a lax decoder would drop
        f"{signing._b64(b'not json').decode()}.{payload}.{sig}",
        f"{head}.{payload}.",  # no signature
        f"{head}.{payload}.{sig}A",  # a signature of the wrong length
    ]
    for token in malformed:
        with pytest.raises(SignatureInvalid):
            signing.verify(token, pub)
    with pytest.raises(SignatureInvalid):
        signing.unverified_header(f"{head}.{payload}")
    for token in malformed[2:]:
        with pytest.raises(SignatureInvalid):
            signing.verify_by_kid(token, lambda _kid: pub)
    for part in (f"{payload}=", f"{payload}+", f"{payload}\u00e9", f" {payload}"):
        with pytest.raises(SignatureInvalid):
            signing.unverified_payload(f"{head}.{part}.{sig}")


def test_verify_by_kid_picks_the_key_named_in_the_header() -> None:
    key, other = signing.generate_key(), signing.generate_key()
    keys = {signing.key_id(k): signing.load_public_key(signing.public_jwk(k)) for k in (key, other)}
    token = signing.sign(ErrorBody(code="x", message="y"), key)
    assert signing.verify_by_kid(token, keys.get) == signing.verify(
        token, keys[signing.key_id(key)]
    )
    with pytest.raises(SignatureInvalid):  # a kid no key is pinned under
        signing.verify_by_kid(token, {}.get)
    # The other pinned key under this key's kid: only the signature check tells.
    with pytest.raises(SignatureInvalid):
        signing.verify_by_kid(token, lambda _kid: keys[signing.key_id(other)])


@pytest.mark.parametrize(
    "values",
    [
        ["stub-0001", "stub-0002", "node with spaces ~!#[]"],
        ["ünïcode", 'quote " inside', "back\\slash", "new\nline", "\x00"],  # the slow path
    ],
)
def test_sign_variants_writes_what_sign_writes(values: list[str]) -> None:
    # Ed25519 signatures are deterministic: the same bytes signed give the same token.
    key = signing.generate_key()
    document = {"query_id": "q", "node_id": "", "nonce": "", "rho": 0.5, "delta": 1e-7, "n": [1]}
    variants = [{"node_id": value, "nonce": f"n{i}"} for i, value in enumerate(values)]
    signed = list(signing.sign_variants(document, key, variants))
    assert [jws for jws, _ in signed] == [signing.sign({**document, **v}, key) for v in variants]
    assert [digest for _, digest in signed] == [signing.digest({**document, **v}) for v in variants]
    assert list(signing.sign_variants(document, key, [])) == []
    # A document whose own text holds a variant's value is still written field by field.
    assert [
        jws
        for jws, _ in signing.sign_variants({**document, "spec": "stub-0001"}, key, variants[:1])
    ] == [signing.sign({**document, "spec": "stub-0001", **variants[0]}, key)]


def test_a_template_fills_to_the_canonical_json_of_the_whole_document() -> None:
    document = {"a": 1.5, "z": ["x"], "query_id": "", "released_at": "", "nested": {"q": 1}}
    template = signing.Template(document, ("query_id", "released_at"))
    for values in (
        {"query_id": "q-1", "released_at": "2026-12-07T09:00:00.5Z"},
        {"query_id": 'with "quote"', "released_at": "ü"},  # written in full
        {"query_id": "q-2"},  # another set of fields: written in full
    ):
        assert template.fill(values) == signing.canonical_json({**document, **values})
    key = signing.generate_key()
    payload = template.fill({"query_id": "q", "released_at": "t"})
    assert signing.sign_canonical(payload, key) == signing.sign(
        {**document, "query_id": "q", "released_at": "t"}, key
    )
