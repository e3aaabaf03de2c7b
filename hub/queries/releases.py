"""Accept a node's release only if a pinned key signed it and it answers what was sent."""

import hashlib
import threading
from typing import Any, TypeVar
from uuid import UUID

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from joserfc.jwk import OKPKey
from nacl.bindings import crypto_sign_BYTES, crypto_sign_open
from nacl.exceptions import CryptoError
from pydantic import BaseModel, ValidationError

from contracts import signing
from contracts.errors import ContractError
from contracts.v1 import QueryRequest, Release
from hub.queries.combine import result_dims
from hub.queries.exceptions import ReleaseRejected

M = TypeVar("M", bound=BaseModel)


def _sodium_check(public: Ed25519PublicKey, signature: bytes, signed: bytes) -> bool:
    """libsodium's Ed25519 verification: RFC 8032's, stricter than OpenSSL's only where a
    signature was made to be ambiguous (non-canonical encodings, small-order points), and
    half its CPU. The hub checks one release signature per node per query (issue #25)."""
    if len(signature) != crypto_sign_BYTES:
        return False
    try:
        crypto_sign_open(signature + signed, public.public_bytes_raw())
    except CryptoError:
        return False
    return True


# Every signature the hub process checks (`contracts.signing.verify`, `verify_by_kid`).
signing.use_ed25519_check(_sodium_check)


def verify_release(
    *,
    token: str,
    request: QueryRequest,
    keys: dict[str, dict[str, Any]],
    contract_version: int | None,
    request_digest: str | None = None,
) -> Release:
    """`keys` maps key ids to the node's pinned public JWKs (current and, in overlap, previous).

    `request_digest`: the digest of `request` if the caller has it (`sent_digest`)."""
    release, _payload = verified_release(
        token=token,
        request=request,
        keys=keys,
        contract_version=contract_version,
        request_digest=request_digest,
    )
    return release


def verified_release(
    *,
    token: str,
    request: QueryRequest,
    keys: dict[str, dict[str, Any]],
    contract_version: int | None,
    request_digest: str | None = None,
) -> tuple[Release, bytes]:
    """`verify_release`, with the verified payload (the release's canonical JSON) as signed,
    which is what the hub stores: it is never parsed and serialised again for that."""
    payload = verified_payload(token=token, keys=keys)
    release = _parse(payload, Release)
    check_release(
        release,
        request=request,
        contract_version=contract_version,
        request_digest=request_digest,
    )
    return release, payload


def verify_signed(*, token: str, keys: dict[str, dict[str, Any]], model: type[M]) -> M:
    """A node message signed by one of its pinned `keys`, parsed as `model`."""
    return _parse(verified_payload(token=token, keys=keys), model)


def verified_payload(*, token: str, keys: dict[str, dict[str, Any]]) -> bytes:
    """The payload of a node message signed by one of its pinned `keys` (by the header's
    `kid`), checked before anything in it is parsed."""

    def pinned(kid: str) -> OKPKey | None:
        jwk = keys.get(kid)
        return None if jwk is None else signing.load_public_key(jwk)

    try:
        return signing.verify_by_kid(token, pinned)
    except ContractError as exc:
        raise ReleaseRejected("the node's answer does not verify with its pinned key") from exc


def _parse(payload: bytes, model: type[M]) -> M:
    try:
        return model.model_validate_json(payload)
    except ValidationError as exc:
        raise ReleaseRejected("the node's answer does not verify with its pinned key") from exc


def check_release(
    release: Release,
    *,
    request: QueryRequest,
    contract_version: int | None,
    request_digest: str | None = None,
) -> Release:
    """A release whose signature was verified: refuse it unless it answers `request`."""
    matches = (
        release.query_id == request.query_id
        and release.node_id == request.node_id
        and release.agreement_id == request.agreement_id
        and release.agreement_version == request.agreement_version
        and release.request_digest == (request_digest or signing.digest(request))
        and release.dataset == request.spec.dataset
        and release.measure == request.spec.measure
        and release.group_by == result_dims(request.spec)
        and release.rho == request.rho  # the cost charged is the one signed, to the bit
        and (contract_version is None or release.contract_version == contract_version)
    )
    if not matches:
        raise ReleaseRejected("the node's release does not answer the request that was sent")
    return release


def sent_request(request_jws: str) -> QueryRequest:
    """The request the hub itself signed and stored; read back without re-verifying."""
    return QueryRequest.model_validate_json(signing.unverified_payload(request_jws))


def sent_digest(request_jws: str) -> str:
    """The digest of a request the hub signed, from its token: the JWS payload is the request's
    canonical JSON (`signing.sign`), so this equals `signing.digest(sent_request(...))`."""
    return hashlib.sha256(signing.unverified_payload(request_jws)).hexdigest()


def stored_payload_text(release_jws: str) -> str:
    """A verified release's payload as stored with its task: its canonical JSON text."""
    return signing.unverified_payload(release_jws).decode("utf-8")


class ParsedReleases:
    """Releases verified in this process, by query and node, so combining a query's answers
    does not parse every stored release again. Held while the query is open: `forget` drops
    a query's releases once its result is built (a completed result is kept as built, and
    each release is dozens of objects that every full garbage collection would walk again:
    4,096 releases kept past their queries were most of a 1,000-node hub's heap and a third
    of its CPU per query). Bounded; a miss (another process verified it, it was evicted or
    forgotten) parses the stored payload, which is the same."""

    def __init__(self, size: int = 4096) -> None:
        self._size = size
        self._lock = threading.Lock()
        self._items: dict[str, dict[str, Release]] = {}
        self._count = 0

    def remember(self, query_id: str, node_id: str, release: Release) -> None:
        with self._lock:
            if self._count >= self._size:
                self._evict(query_id)
            by_node = self._items.setdefault(query_id, {})
            self._count += node_id not in by_node
            by_node[node_id] = release

    def _evict(self, keep: str) -> None:
        # The oldest other queries first (dicts keep insertion order), then, for one query
        # larger than the bound, the oldest quarter of its own.
        goal = self._size * 3 // 4
        for query_id in [q for q in self._items if q != keep]:
            if self._count <= goal:
                return
            self._count -= len(self._items.pop(query_id))
        own = self._items.get(keep, {})
        for node_id in list(own)[: max(self._count - goal, 0)]:
            del own[node_id]
            self._count -= 1

    def peek(self, query_id: str, node_id: str) -> Release | None:
        """The release if this process parsed it (None: read the stored payload)."""
        with self._lock:
            cached = self._items.get(query_id, {}).get(node_id)
        return cached if cached is not None and str(cached.query_id) == query_id else None

    def of(self, query_id: str) -> dict[str, Release]:
        """`peek` for all of a query's releases parsed here at once, by node id (a copy):
        combining 1,000 answers takes the lock once, not once per node."""
        with self._lock:
            held = dict(self._items.get(query_id, {}))
        if not held:
            return held
        wanted = UUID(query_id)
        return {node_id: r for node_id, r in held.items() if r.query_id == wanted}

    def forget(self, query_id: str) -> None:
        """Drop a query's releases: its result is built (`service._refresh` at completion)."""
        with self._lock:
            self._count -= len(self._items.pop(query_id, {}))


parsed_releases = ParsedReleases()
