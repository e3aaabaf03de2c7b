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
