"""Canonical JSON (RFC 8785) and Ed25519 compact JWS, the only way bytes are signed in Sauti."""

import base64
import binascii
import functools
import hashlib
import json
import math
import re
import secrets
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, TypeVar

import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import OKPKey
from pydantic import BaseModel, ValidationError

from contracts.errors import KeyInvalid, SignatureInvalid

# RFC 9864 deprecates the polymorphic "EdDSA" in favour of the fully specified name.
ALGORITHM = "Ed25519"
M = TypeVar("M", bound=BaseModel)


def canonical_json(value: BaseModel | dict[str, Any] | list[Any]) -> bytes:
    """Bytes that every party computes identically for the same content (RFC 8785)."""
    data = value.model_dump(mode="json") if isinstance(value, BaseModel) else value
    try:
        floats: list[float] = []
        ready = _json_ready(data, floats)
        text = json.dumps(
            ready, ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False
        ).encode("utf-8")
    except (_NotPlain, UnicodeEncodeError):
        return bytes(rfc8785.dumps(data))
    for index, number in enumerate(floats):
        text = text.replace(_placeholder(index), rfc8785.dumps(number), 1)
    return text


# The fast path above: for documents of strings, safe integers, booleans, nulls, ASCII keys and
# floats that print alike in Python and ECMAScript, the C `json` encoder writes exactly the
# RFC 8785 bytes (same string escapes, keys in code-point = UTF-16 order) at a fraction of the
# pure-Python `rfc8785` cost; anything else is left to `rfc8785` itself.
# Floats that print differently (exponent forms such as a release's delta = 1e-07) go in as
# placeholder strings, and `rfc8785` writes just those numbers into the output; a document
# whose own strings contain NUL (which placeholders use) takes the reference path.
# tests/contracts/test_canonical_json.py checks the two agree.
_SAFE_INT = 2**53 - 1


def _placeholder(index: int) -> bytes:
    return f'"\\u0000{index}\\u0000"'.encode()


class _NotPlain(Exception):
    pass


def _json_ready(value: Any, floats: list[float]) -> Any:
    kind = type(value)
    if kind is str:
        if "\0" in value:
            raise _NotPlain
        return value
    if kind is bool or value is None:
        return value
    if kind is dict:
        out = {}
        for key, item in value.items():
            if type(key) is not str or not key.isascii() or "\0" in key:
                raise _NotPlain
            out[key] = _json_ready(item, floats)
        return out
    if kind is list or kind is tuple:
        return [_json_ready(item, floats) for item in value]
    if kind is float:
        magnitude = abs(value)
        if value == 0:
            return 0  # ECMAScript prints -0 and 0 alike as "0"
        if value.is_integer():
            if magnitude < _SAFE_INT:
                return int(value)  # "3", not Python's "3.0"
            raise _NotPlain  # ECMAScript pads the shortest digits with zeros here
        if 1e-4 <= magnitude < 1e16:
            return value  # Python's repr is then fixed-point with the same shortest digits
        if not math.isfinite(value):
            raise _NotPlain  # NaN, inf: the reference refuses them
        # Exponent forms differ ("1e-05" vs "0.00001"): the reference writes this number.
        floats.append(value)
        return f"\0{len(floats) - 1}\0"
    if kind is int:
        if -_SAFE_INT <= value <= _SAFE_INT:
            return value
        raise _NotPlain
    raise _NotPlain  # subclasses (enums) and anything else: the reference decides


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
    """The Ed25519 public key of `jwk`; imported once per distinct JWK (pinned keys recur on
    every request and release), so verification costs only the signature check."""
    try:
        frozen = tuple(sorted(jwk.items()))
        hash(frozen)
    except (TypeError, AttributeError):
        return _import_public_key(jwk)
    return _cached_public_key(frozen)


@functools.lru_cache(maxsize=1024)
def _cached_public_key(frozen: tuple[tuple[str, Any], ...]) -> OKPKey:
    return _import_public_key(dict(frozen))


def _import_public_key(jwk: Any) -> OKPKey:
    try:
        key = OKPKey.import_key(jwk)
    except (JoseError, ValueError, TypeError, KeyError) as exc:
        raise KeyInvalid("not an Ed25519 public JWK") from exc
    if key.as_dict(private=False).get("crv") != "Ed25519" or key.is_private:
        raise KeyInvalid("not an Ed25519 public JWK")
    return key


def sign(model: BaseModel | dict[str, Any], key: OKPKey) -> str:
    """Compact JWS over the model's (or JSON document's) canonical JSON, with the key id in
    the header."""
    private = key.private_key
    if not isinstance(private, Ed25519PrivateKey):
        header = {"alg": ALGORITHM, "kid": key_id(key)}
        payload = canonical_json(model)
        return str(jws.serialize_compact(header, payload, key, algorithms=[ALGORITHM]))
    return _sign_bytes(canonical_json(model), private, _protected(key))


def _sign_bytes(payload: bytes, private: Ed25519PrivateKey, protected: bytes) -> str:
    # The same bytes joserfc writes (its header JSON, unpadded base64url), without its
    # per-call registry and header checks, which cost more than the Ed25519 signature.
    signing_input = protected + b"." + _b64(payload)
    return (signing_input + b"." + _b64(private.sign(signing_input))).decode("ascii")


# The encoded protected header of each signing key object, so a hub signing one request per
# node computes the key's RFC 7638 thumbprint once, not once per signature. Keyed by the
# object's id and checked through a weak reference: an id reused by another key never hits.
_PROTECTED: dict[int, tuple["weakref.ReferenceType[OKPKey]", bytes]] = {}


def _protected(key: OKPKey) -> bytes:
    cached = _PROTECTED.get(id(key))
    if cached is not None and cached[0]() is key:
        return cached[1]
    header = {"alg": ALGORITHM, "kid": key_id(key)}
    encoded = _b64(json.dumps(header, ensure_ascii=True, separators=(",", ":")).encode())
    if len(_PROTECTED) >= 256:
        _PROTECTED.clear()
    _PROTECTED[id(key)] = (weakref.ref(key), encoded)
    return encoded


def sign_variants(
    document: dict[str, Any], key: OKPKey, variants: Iterable[Mapping[str, str]]
) -> Iterator[tuple[str, str]]:
    """One compact JWS per variant of `document`, with the SHA-256 hex of the bytes it signs
    (`digest({**document, **variant})`): each variant replaces some of its top-level string
    fields (the same fields in every variant), e.g. a request per node that differs only in
    its node id and nonce. Every token is byte-for-byte `sign({**document, **variant}, key)`;
    the canonical JSON is written once (`Template`) and each variant's values are put into
    it, so per variant only the encoding, the signature and the digest are left."""
    items = iter(variants)
    first = next(items, None)
    if first is None:
        return
    template = Template(document, first.keys())
    for variant in (first, *items):
        payload = template.fill(variant)
        yield sign_canonical(payload, key), hashlib.sha256(payload).hexdigest()


def sign_canonical(payload: bytes, key: OKPKey) -> str:
    """`sign` of a document whose canonical JSON the caller already has (`Template.fill`,
    `canonical_json`): the bytes must be exactly that."""
    private = key.private_key
    if not isinstance(private, Ed25519PrivateKey):
        header = {"alg": ALGORITHM, "kid": key_id(key)}
        return str(jws.serialize_compact(header, payload, key, algorithms=[ALGORITHM]))
    return _sign_bytes(payload, private, _protected(key))


class Template:
    """The canonical JSON of `document` with some top-level string fields left open: `fill`
    gives `canonical_json({**document, **values})`, byte for byte, by putting the values'
    JSON strings into bytes written once (plain printable ASCII values; anything else, or
    other fields, is written in full)."""

    def __init__(self, document: dict[str, Any], fields: Iterable[str]) -> None:
        self._document = document
        self._fields = frozenset(fields)
        marks = {name: f"sauti-variant-{secrets.token_hex(16)}" for name in self._fields}
        text = canonical_json({**document, **marks})
        parts = [text]
        order: list[str] = []
        # Split at each mark, in the order the marks appear (each exactly once, or give up).
        for name, mark in sorted(marks.items(), key=lambda m: text.find(m[1].encode())):
            quoted = b'"' + mark.encode() + b'"'
            head, found, tail = parts[-1].partition(quoted)
            if not found or quoted in tail or quoted in head:
                parts, order = [], []
                break
            parts[-1:] = [head, tail]
            order.append(name)
        self._parts = parts
        self._order = order

    def fill(self, values: Mapping[str, str]) -> bytes:
        if not self._parts or values.keys() != self._fields:
            return canonical_json({**self._document, **values})
        ordered = [values[name] for name in self._order]
        if not all(map(_plain, ordered)):
            return canonical_json({**self._document, **values})
        payload = bytearray(self._parts[0])
        for value, tail in zip(ordered, self._parts[1:], strict=True):
            payload += b'"' + value.encode("ascii") + b'"' + tail
        return bytes(payload)


_PLAIN = re.compile(r"[ !#-\[\]-~]*")


def _plain(value: object) -> bool:
    """A string whose canonical JSON is itself in quotes: printable ASCII, no `"` or `\\`."""
    return isinstance(value, str) and _PLAIN.fullmatch(value) is not None


def _b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def verify(token: str, key: OKPKey) -> bytes:
    """The payload, if the token verifies with `key` and uses Ed25519; else SignatureInvalid."""
    public = key.public_key
    if not isinstance(public, Ed25519PublicKey):
        return _verify_with_joserfc(token, key)
    # Checked here directly, like `sign` writes directly: joserfc's per-call registry, key
    # thumbprint and header checks cost several times the Ed25519 verification itself, and a
    # hub verifies one release per node per query. The rules are RFC 7515's for this one
    # algorithm: three unpadded base64url parts, a JSON object header with `alg` "Ed25519",
    # no `crit` extensions we would have to understand, the signature over the first two.
    header, payload, signature = _split(token)
    return _verify_parts(token, header, payload, signature, public)


# The Ed25519 check of `verify` and `verify_by_kid`: (public key, signature, signed bytes)
# -> whether it verifies. None: cryptography's (OpenSSL). See `use_ed25519_check`.
Ed25519Check = Callable[[Ed25519PublicKey, bytes, bytes], bool]
_ed25519_check: Ed25519Check | None = None


def use_ed25519_check(check: Ed25519Check | None) -> None:
    """Check Ed25519 signatures with `check` instead of cryptography's, in this process: an
    implementation at least as strict (RFC 8032), for a side that verifies one signature
    per node per query (the hub installs libsodium's, `hub.queries.releases`: half the
    CPU of OpenSSL's). The JWS rules around the signature stay these."""
    global _ed25519_check  # noqa: PLW0603 - one setting per process, made at import
    _ed25519_check = check


def _verify_parts(
    token: str, header: dict[str, Any], payload: bytes, signature: bytes, public: Ed25519PublicKey
) -> bytes:
    if header.get("alg") != ALGORITHM:
        raise SignatureInvalid("unexpected signature algorithm")
    if "crit" in header or header.get("b64", True) is not True:
        raise SignatureInvalid("unsupported JWS header parameters")
    signing_input = token.rsplit(".", 1)[0].encode("ascii")
    check = _ed25519_check
    if check is not None:
        if not check(public, signature, signing_input):
            raise SignatureInvalid("the signature does not verify")
        return payload
    try:
        public.verify(signature, signing_input)
    except InvalidSignature as exc:
        raise SignatureInvalid("the signature does not verify") from exc
    return payload


def _verify_with_joserfc(token: str, key: OKPKey) -> bytes:
    try:
        obj = jws.deserialize_compact(token, key, algorithms=[ALGORITHM])
    except (JoseError, ValueError, TypeError, KeyError) as exc:
        raise SignatureInvalid("the signature does not verify") from exc
    if obj.headers().get("alg") != ALGORITHM:
        raise SignatureInvalid("unexpected signature algorithm")
    return bytes(obj.payload)


_FROM_URLSAFE = bytes.maketrans(b"-_", b"+/")


def _b64url_decode(part: str) -> bytes:
    """An unpadded base64url part (RFC 7515), strictly: any character outside the URL-safe
    alphabet, padding included, is refused (SignatureInvalid), as a pattern check would, but
    in one C pass over the part (a release is kilobytes; the hub decodes one per node)."""
    if not part.isascii() or "+" in part or "/" in part or "=" in part:
        raise SignatureInvalid("malformed JWS")
    data = part.encode("ascii").translate(_FROM_URLSAFE) + b"=" * (-len(part) % 4)
    try:
        return binascii.a2b_base64(data, strict_mode=True)
    except (ValueError, binascii.Error) as exc:
        raise SignatureInvalid("malformed JWS") from exc


def _parts(token: str) -> list[str]:
    if not isinstance(token, str):
        raise SignatureInvalid("malformed JWS")
    parts = token.split(".")
    if len(parts) != 3:
        raise SignatureInvalid("malformed JWS")
    return parts


def _header(encoded: str) -> dict[str, Any]:
    try:
        header = json.loads(_b64url_decode(encoded))
    except ValueError as exc:
        raise SignatureInvalid("malformed JWS") from exc
    if not isinstance(header, dict):
        raise SignatureInvalid("malformed JWS")
    return header


def _split(token: str) -> tuple[dict[str, Any], bytes, bytes]:
    """Header, payload and signature of a compact JWS, decoded but not verified."""
    parts = _parts(token)
    return _header(parts[0]), _b64url_decode(parts[1]), _b64url_decode(parts[2])


def verify_model(token: str, key: OKPKey, model: type[M]) -> M:
    """Verify, then parse the payload as `model`; a bad payload counts as a bad signature."""
    payload = verify(token, key)
    try:
        return model.model_validate_json(payload)
    except ValidationError as exc:
        raise SignatureInvalid(f"signed payload is not a valid {model.__name__}") from exc


def unverified_header(token: str) -> dict[str, Any]:
    """The JWS header, to pick a key by `kid` before verifying. Never trust it alone."""
    return _header(_parts(token)[0])


def unverified_payload(token: str) -> bytes:
    """The JWS payload before verification, to read a self-signed key. Never trust it alone."""
    # Only the part asked for is decoded (`verify` checks the whole token).
    return _b64url_decode(_parts(token)[1])


def verify_by_kid(token: str, keys: Callable[[str], OKPKey | None]) -> bytes:
    """`verify` with the key that `keys` gives for the token's `kid` (None, or no `kid`:
    SignatureInvalid): the header is decoded once, for choosing the key and checking it."""
    header, payload, signature = _split(token)
    kid = header.get("kid")
    key = keys(kid) if isinstance(kid, str) else None
    if key is None:
        raise SignatureInvalid("not signed with a known key")
    public = key.public_key
    if not isinstance(public, Ed25519PublicKey):
        return _verify_with_joserfc(token, key)
    return _verify_parts(token, header, payload, signature, public)
