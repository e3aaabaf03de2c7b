"""The hub checks Ed25519 signatures with libsodium (issue #25: half OpenSSL's CPU, one check
per node per query): the same answers as cryptography's on valid, forged, tampered and
malformed signatures, through `contracts.signing` as every hub path calls it."""

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from joserfc.jwk import OKPKey

from contracts import signing
from contracts.errors import SignatureInvalid
from contracts.v1 import ErrorBody
from hub.queries import releases


def _public(key: OKPKey) -> Ed25519PublicKey:
    public = signing.load_public_key(signing.public_jwk(key)).public_key
    assert isinstance(public, Ed25519PublicKey)
    return public


def test_libsodium_agrees_with_cryptography() -> None:
    key, other = signing.generate_key(), signing.generate_key()
    message = b"header.payload"
    private = key.private_key
    assert isinstance(private, Ed25519PrivateKey)
    signature = private.sign(message)
    public, wrong = _public(key), _public(other)
    cases = [
        (public, signature, message, True),
        (wrong, signature, message, False),  # another node's key
        (public, signature, message + b"x", False),  # tampered payload
        (public, bytes([signature[0] ^ 1]) + signature[1:], message, False),
        (public, signature[:-1], message, False),  # the wrong length
        (public, signature + b"\0", message, False),
        (public, signature[:32] + b"\xff" * 32, message, False),  # S not canonical
    ]
    for pub, sig, data, valid in cases:
        assert releases._sodium_check(pub, sig, data) is valid
        try:
            pub.verify(sig, data)
        except InvalidSignature:
            assert not valid
        else:
            assert valid


def test_the_hub_verifies_tokens_with_libsodium() -> None:
    assert signing._ed25519_check is releases._sodium_check
    key, other = signing.generate_key(), signing.generate_key()
    keys = {signing.key_id(k): signing.load_public_key(signing.public_jwk(k)) for k in (key, other)}
    token = signing.sign(ErrorBody(code="x", message="y"), key)
    assert signing.verify_by_kid(token, keys.get) == signing.unverified_payload(token)
    head, payload, _ = token.split(".")
    forged = signing.sign(ErrorBody(code="x", message="z"), other).split(".")[2]
    with pytest.raises(SignatureInvalid):
        signing.verify_by_kid(f"{head}.{payload}.{forged}", keys.get)
    with pytest.raises(SignatureInvalid):  # the other pinned key under this key's kid
        signing.verify_by_kid(token, lambda _kid: keys[signing.key_id(other)])
