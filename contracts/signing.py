"""Canonical JSON (RFC 8785) and Ed25519 compact JWS, the only way bytes are signed in Sauti."""

import hashlib
import json
from pathlib import Path
from typing import Any, TypeVar

import rfc8785
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import OKPKey
from pydantic import BaseModel, ValidationError

from contracts.errors import KeyInvalid, SignatureInvalid

# RFC 9864 deprecates the polymorphic "EdDSA" in favour of the fully specified name.
ALGORITHM = "Ed25519"
M = TypeVar("M", bound=BaseModel)


def canonical_json(value: BaseModel | dict[str, Any] | list[Any]) -> bytes:
    """Bytes that every party computes identically for the same content."""
    data = value.model_dump(mode="json") if isinstance(value, BaseModel) else value
    return bytes(rfc8785.dumps(data))


def digest(value: BaseModel | dict[str, Any] | list[Any]) -> str:
    """SHA-256 hex of the canonical JSON: the identity of a document version."""
    return hashlib.sha256(canonical_json(value)).hexdigest()


def generate_key() -> OKPKey:
    return OKPKey.generate_key("Ed25519")


def key_id(key: OKPKey) -> str:
    """RFC 7638 thumbprint: the same for the private key and its public half."""
    return str(key.thumbprint())


def public_jwk(key: OKPKey) -> dict[str, Any]:
    return dict(key.as_dict(private=False))


def load_public_key(jwk: dict[str, Any]) -> OKPKey:
    try:
        key = OKPKey.import_key(jwk)
    except (JoseError, ValueError, TypeError, KeyError) as exc:
        raise KeyInvalid("not an Ed25519 public JWK") from exc
    if key.as_dict(private=False).get("crv") != "Ed25519" or key.is_private:
        raise KeyInvalid("not an Ed25519 public JWK")
    return key


def save_private_key(key: OKPKey, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600, exist_ok=True)
    path.write_text(json.dumps(key.as_dict(private=True)))


def load_private_key(path: Path) -> OKPKey:
    try:
        return OKPKey.import_key(json.loads(path.read_text()))
    except (JoseError, ValueError, TypeError, KeyError) as exc:
        raise KeyInvalid(f"cannot read the private key at {path}") from exc


def sign(model: BaseModel, key: OKPKey) -> str:
    """Compact JWS over the model's canonical JSON, with the key id in the header."""
    header = {"alg": ALGORITHM, "kid": key_id(key)}
    return str(jws.serialize_compact(header, canonical_json(model), key, algorithms=[ALGORITHM]))


def verify(token: str, key: OKPKey) -> bytes:
    """The payload, if the token verifies with `key` and uses Ed25519; else SignatureInvalid."""
    try:
        obj = jws.deserialize_compact(token, key, algorithms=[ALGORITHM])
    except (JoseError, ValueError, TypeError, KeyError) as exc:
        raise SignatureInvalid("the signature does not verify") from exc
    if obj.headers().get("alg") != ALGORITHM:
        raise SignatureInvalid("unexpected signature algorithm")
    return bytes(obj.payload)


def verify_model(token: str, key: OKPKey, model: type[M]) -> M:
    """Verify, then parse the payload as `model`; a bad payload counts as a bad signature."""
    payload = verify(token, key)
    try:
        return model.model_validate_json(payload)
    except ValidationError as exc:
        raise SignatureInvalid(f"signed payload is not a valid {model.__name__}") from exc


def unverified_header(token: str) -> dict[str, Any]:
    """The JWS header, to pick a key by `kid` before verifying. Never trust it alone."""
    try:
        obj = jws.extract_compact(token.encode())
    except (JoseError, ValueError, TypeError) as exc:
        raise SignatureInvalid("malformed JWS") from exc
    return dict(obj.headers())


def unverified_payload(token: str) -> bytes:
    """The JWS payload before verification, to read a self-signed key. Never trust it alone."""
    try:
        obj = jws.extract_compact(token.encode())
    except (JoseError, ValueError, TypeError) as exc:
        raise SignatureInvalid("malformed JWS") from exc
    return bytes(obj.payload)
