"""Enroll with a hub (pinning its key from the token) and answer its tasks in pull mode.

Pull mode opens no port: the node long-polls the hub with a message signed by its own key,
checks each task against the pinned hub key and its expiry, answers it with the same
transport-agnostic handler push mode uses (`node.queries.service.handle_query`), and posts
the signed release, or a signed refusal carrying the node's own code, back to the hub.
Retrying is always safe: a task seen again is answered from the stored release, uncharged.
"""

import logging
import secrets
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ValidationError

from contracts import signing
from contracts.errors import ContractError
from contracts.v1 import (
    EnrollmentAccepted,
    EnrollmentRequest,
    EnrollmentSubmission,
    ErrorResponse,
    HubKeyRotation,
    KeyRotation,
    KeyRotationAccepted,
    KeyRotationSubmission,
    NodePoll,
    QueryRequest,
    Signed,
    TaskBatch,
    TaskRefusal,
)
from contracts.v1.audit import KEY_ROTATED
from contracts.v1.base import utc
from contracts.v1.federation import ENROLLMENT_TOKEN_PREFIX, HUB_KEY_ROTATION_HEADER
from node import metrics, security
from node.agreements import service as agreements
from node.audit import service as audit
from node.datasets import service as datasets
from node.db import transaction, url_for
from node.exceptions import HomeError, NodeError
from node.home import (
    NodeIdentity,
    adopt_hub_rotation,
    discard_next_key,
    hub_keys,
    load_identity,
    load_key,
    next_key,
    pin_hub,
    repair_identity,
    switch_key,
)
from node.queries.service import handle_query
from node.settings import NodeSettings
from node.sync.exceptions import (
    EnrollmentFailed,
    HubNotReached,
    KeyRotationFailed,
    NotEnrolled,
    RotationUnconfirmed,
)

log = logging.getLogger(__name__)
MAX_MESSAGE = 300
POST_ATTEMPTS = 3
RELEASES = "/v1/federation/releases"
REFUSALS = "/v1/federation/refusals"
# Labels in the security log and metrics: pulled tasks, hub key announcements.
PULL_ROUTE = "pull"
ANNOUNCEMENT = "hub_key_announcement"
# A task failing this many times for unexpected reasons is refused with TASK_FAILED.
STRIKES = 3
TASK_FAILED = "task_failed"


def enroll(
    *,
    home: Path,
    hub_url: str,
    token: str,
    mode: Literal["push", "pull"],
    url: str | None = None,
    client: httpx.Client | None = None,
) -> EnrollmentAccepted:
    """Register this node's key with the hub and pin the hub key the token names."""
    parts = token.strip().split(".")
    if len(parts) != 3 or parts[0] != ENROLLMENT_TOKEN_PREFIX or not parts[1] or not parts[2]:
        raise EnrollmentFailed("the enrollment token is not a Sauti enrollment token")
    hub_kid = parts[1]
    if mode == "push" and not url:
        raise EnrollmentFailed("a push node needs --url, the address the hub calls")
    identity = load_identity(home)
    key = load_key(home)
    hub_url = hub_url.strip().rstrip("/")
    request = EnrollmentRequest(
        hub_kid=hub_kid,
        node_id=identity.node_id,
        name=identity.name,
        country=identity.country,
        mode=mode,
        url=url.rstrip("/") if url else None,
        public_jwk=identity.public_jwk,
        issued_at=datetime.now(UTC),
        nonce=secrets.token_hex(16),
    )
    body = EnrollmentSubmission(token=token.strip(), jws=signing.sign(request, key))
    with _client(client) as http:
        response = _post(http, f"{hub_url}/v1/enroll", body, timeout=30)
    if response.status_code >= 400:
        raise EnrollmentFailed(f"the hub refused the enrollment ({_error(response)})")
    accepted = _verify_accepted(response, hub_kid=hub_kid, identity=identity)
    pin_hub(home, hub_id=accepted.hub_id, public_jwk=accepted.hub_public_jwk, url=hub_url)
    log.info("enrolled with hub %s as %s (%s)", accepted.hub_id, accepted.node_id, accepted.mode)
    return accepted


def _verify_accepted(
    response: httpx.Response, *, hub_kid: str, identity: NodeIdentity
) -> EnrollmentAccepted:
    """Trust the hub key only if its thumbprint is the one the token carried."""
    try:
        token = Signed.model_validate_json(response.content).jws
        claimed = EnrollmentAccepted.model_validate_json(signing.unverified_payload(token))
        hub_key = signing.load_public_key(claimed.hub_public_jwk)
        if signing.key_id(hub_key) != hub_kid:
            raise EnrollmentFailed("the hub answered with another key than the token names")
        accepted = signing.verify_model(token, hub_key, EnrollmentAccepted)
    except (ValidationError, ContractError) as exc:
        raise EnrollmentFailed("the hub's answer does not verify") from exc
    if accepted.node_id != identity.node_id or accepted.kid != identity.kid:
        raise EnrollmentFailed("the hub enrolled another node or key than this one")
    return accepted


@dataclass(frozen=True)
class Rotated:
    old_kid: str
    new_kid: str
    # Until when the hub still verifies the old key (answers signed before the rotation).
    old_valid_until: datetime | None


def rotate_key(
    *, home: Path, client: httpx.Client | None = None, discard_pending: bool = False
) -> Rotated:
    """Replace this node's key: the hub pins the new one, then the node signs with it.

    The new key is kept in a pending file before the hub is asked, and the node switches only
    on the hub's signed `KeyRotationAccepted` naming that key, verified with the pinned hub
    key; anything else (lost, unsigned, forged) leaves the key pending, and running the
    command again resumes with it. The switch is recorded in the node's audit log with the
    retired public key, so checkpoints it signed still verify in exports.
    """
    identity = repair_identity(home)
    if identity.hub_url is None or identity.hub_id is None or identity.hub_public_jwk is None:
        raise NotEnrolled("no hub URL is pinned: run `sauti node enroll` first")
    if discard_pending:
        discard_next_key(home)
    current, new = load_key(home), next_key(home)
    rotation = KeyRotation(
        hub_id=identity.hub_id,
        node_id=identity.node_id,
        new_public_jwk=signing.public_jwk(new),
        issued_at=datetime.now(UTC),
        nonce=secrets.token_hex(16),
    )
    body = KeyRotationSubmission(
        by_current_key=signing.sign(rotation, current), by_new_key=signing.sign(rotation, new)
    )
    url = f"{identity.hub_url}/v1/nodes/{identity.node_id}/keys"
    with _client(client) as http:
        response = _post(http, url, body, timeout=30)
    if response.status_code >= 500:
        raise HubNotReached(f"the hub failed to take the new key ({_error(response)}); run again")
    if response.status_code >= 400:
        # A refusal is not signed: had the hub in fact pinned the new key (and the answer
        # been replaced on the way), dropping it would lock this node out once the old key's
        # overlap ends. So the key stays pending; running again either completes the rotation
        # (the hub answers a repeat with its signed acceptance) or is refused again, and only
        # the steward drops the pending key (`--discard-pending`).
        raise KeyRotationFailed(
            f"the hub refused the new key ({_error(response)}); it stays pending: run again "
            "to retry, or with --discard-pending to start over with a fresh key"
        )
    new_kid = signing.key_id(new)
    if learn_hub_key(home=home, announced=response.headers.get(HUB_KEY_ROTATION_HEADER)):
        identity = load_identity(home)
    accepted = _verify_rotation(response, identity=identity, new_kid=new_kid)
    retired_at = datetime.now(UTC)
    with transaction(url_for(home=home)) as session:
        audit.append(
            session,
            actor="node",
            action=KEY_ROTATED,
            object=f"key:{identity.kid}",
            details={
                "old_kid": identity.kid,
                "old_public_jwk": identity.public_jwk,
                "new_kid": new_kid,
                "retired_at": retired_at.isoformat(),
                "valid_until": accepted.previous_valid_until.isoformat(),
            },
        )
    switch_key(home, retired_at=retired_at, valid_until=accepted.previous_valid_until)
    log.info("node key rotated from %s to %s", identity.kid, new_kid)
    return Rotated(
        old_kid=identity.kid, new_kid=new_kid, old_valid_until=accepted.previous_valid_until
    )


def _verify_rotation(
    response: httpx.Response, *, identity: NodeIdentity, new_kid: str
) -> KeyRotationAccepted:
    """The hub's answer, trusted only if the pinned hub key signed it for this node and key."""
    try:
        token = Signed.model_validate_json(response.content).jws
        kid = str(signing.unverified_header(token).get("kid"))
        jwk = hub_keys(identity, now=datetime.now(UTC)).get(kid)
        if jwk is None:
            raise ContractError("not signed by a hub key this node takes now")
        accepted = signing.verify_model(token, signing.load_public_key(jwk), KeyRotationAccepted)
    except (ValidationError, ContractError) as exc:
        raise RotationUnconfirmed(
            "the hub's answer to the rotation is not signed by the pinned hub key; "
            "the new key stays pending (run again)"
        ) from exc
    if (accepted.hub_id, accepted.node_id) != (identity.hub_id, identity.node_id):
        raise RotationUnconfirmed("the hub's signed answer is for another hub or node")
    if accepted.kid != new_kid:
        raise RotationUnconfirmed("the hub's signed answer names another key than the new one")
    return accepted


def learn_hub_key(*, home: Path, announced: str | None, now: datetime | None = None) -> bool:
    """Adopt a hub key rotation the hub announced (a header on its requests and answers).

    Pinned only if signed by the pinned hub key and by the announced one; anything else is
    logged and ignored, changing nothing (the request it came with is then judged by the
    key pinned before). True when the pinned hub key changed.
    """
    if not announced:
        return False
    try:
        rotation = HubKeyRotation.model_validate_json(announced)
        changed = adopt_hub_rotation(home, rotation, now=now or datetime.now(UTC))
    except (ValidationError, HomeError):
        # Anyone who reaches a push node can send the header: its refusals go to the
        # rate-limited security log, so a flood of them cannot fill the node's disk.
        security.unverified(route=ANNOUNCEMENT, code="key_announcement_refused")
        return False
    if changed:
        log.info("pinned the hub's new key (announced rotation verified)")
    return changed


@dataclass
class PullStats:
    received: int = 0
    answered: int = 0
    refused: int = 0
    skipped: int = 0
    undelivered: int = 0
    # Tasks that failed for an unexpected reason and were left for the hub to hand out again.
    failed: int = 0


def poll_once(
    *,
    settings: NodeSettings,
    client: httpx.Client,
    wait_seconds: float = 20,
    max_tasks: int = 20,
    now: datetime | None = None,
) -> PullStats:
    """One long poll and the answers to whatever it brought."""
    identity = load_identity(settings.home)
    if identity.hub_url is None or identity.hub_id is None or identity.hub_public_jwk is None:
        raise NotEnrolled("no hub URL and key are pinned: run `sauti node enroll`")
    key = load_key(settings.home)
    poll = NodePoll(
        hub_id=identity.hub_id,
        node_id=identity.node_id,
        issued_at=now or datetime.now(UTC),
        nonce=secrets.token_hex(16),
        wait_seconds=wait_seconds,
        max_tasks=max_tasks,
    )
    response = _post(
        client,
        f"{identity.hub_url}/v1/federation/poll",
        Signed(jws=signing.sign(poll, key)),
        timeout=wait_seconds + 30,
    )
    if response.status_code >= 400:
        raise HubNotReached(f"the hub refused the poll ({_error(response)})")
    if learn_hub_key(home=settings.home, announced=response.headers.get(HUB_KEY_ROTATION_HEADER)):
        identity = load_identity(settings.home)
    try:
        batch = TaskBatch.model_validate_json(response.content)
    except ValidationError as exc:
        raise HubNotReached("the hub's answer to the poll is not a task batch") from exc
    stats = PullStats(received=len(batch.tasks))
    for task in batch.tasks:
        try:
            _answer(settings=settings, identity=identity, client=client, task=task, stats=stats)
        except Exception as exc:
            log.error("pull: a task could not be handled (%s)", type(exc).__name__)
            stats.failed += 1
    report_outbox(settings=settings, client=client)
    return stats


def report_outbox(*, settings: NodeSettings, client: httpx.Client) -> None:
    """Send, over the poll channel, the signatures and status notices the hub has yet to
    confirm; whatever fails waits for the next round (the poll never dies of it)."""
    try:
        agreements.report_all(home=settings.home, settings=settings, client=client)
    except Exception as exc:
        log.warning("pull: signatures and notices not sent (%s)", type(exc).__name__)


def _answer(
    *,
    settings: NodeSettings,
    identity: NodeIdentity,
    client: httpx.Client,
    task: Signed,
    stats: PullStats,
) -> None:
    assert identity.hub_url is not None
    try:
        kid = str(signing.unverified_header(task.jws).get("kid"))
        jwk = hub_keys(identity, now=datetime.now(UTC)).get(kid)
        if jwk is None:
            raise ContractError("not signed by a hub key this node takes now")
        request = signing.verify_model(task.jws, signing.load_public_key(jwk), QueryRequest)
    except ContractError:
        # Not from the pinned hub: nothing to answer (handle_query would refuse it too).
        log.warning("a task that does not verify with the pinned hub key was skipped")
        stats.skipped += 1
        return
    if utc(request.expires_at) < datetime.now(UTC):
        # A node back after days answers only what is still open; the hub closed the rest.
        log.info("expired task %s skipped", request.query_id)
        stats.skipped += 1
        return
    digest = signing.digest(request)
    answer = _poisoned.refusal(request.query_id, digest)
    if answer is not None:
        # Refused before (the refusal did not reach the hub): sent again, not recomputed.
        path, kind = REFUSALS, "refused"
    else:
        try:
            with metrics.observing_query():
                answer = handle_query(
                    settings=settings, signed=task, route=PULL_ROUTE, on_verified=metrics.hub_heard
                )
            path, kind = RELEASES, "answered"
        except NodeError as exc:
            answer = _refusal(
                settings, identity, request, digest=digest, code=exc.code, message=exc.message
            )
            path, kind = REFUSALS, "refused"
        except Exception as exc:
            # Not a refusal: the database or disk may be briefly away, so the task is left
            # for the hub to hand out again; one that keeps failing is refused for good.
            log.error("pull: task %s failed (%s)", request.query_id, type(exc).__name__)
            if not _poisoned.strike(request.query_id, digest):
                stats.failed += 1
                return
            answer = _refusal(
                settings,
                identity,
                request,
                digest=digest,
                code=TASK_FAILED,
                message="the node failed to answer this task several times and gives up on it",
            )
            path, kind = REFUSALS, "refused"
        if kind == "refused":
            _poisoned.remember(request.query_id, digest, answer)
    if _deliver(client, f"{identity.hub_url}{path}", answer):
        setattr(stats, kind, getattr(stats, kind) + 1)
        if kind == "refused":
            _poisoned.forget(request.query_id)
    else:
        stats.undelivered += 1


def _refusal(
    settings: NodeSettings,
    identity: NodeIdentity,
    request: QueryRequest,
    *,
    digest: str,
    code: str,
    message: str,
) -> Signed:
    refusal = TaskRefusal(
        query_id=request.query_id,
        node_id=identity.node_id,
        request_digest=digest,
        code=code,
        message=message[:MAX_MESSAGE],
        refused_at=datetime.now(UTC),
    )
    return Signed(jws=signing.sign(refusal, load_key(settings.home)))


class _Poisoned:
    """Tasks this process refused or keeps failing on, so a task the hub hands out again
    (its lease ran out before the refusal arrived) is answered from here, not recomputed,
    and one failing for unexpected reasons is refused after STRIKES tries. In memory only
    and bounded: a restarted node at worst recomputes a refusal once."""

    def __init__(self, size: int = 1024) -> None:
        self._size = size
        self._lock = threading.Lock()
        self._refusals: OrderedDict[tuple[uuid.UUID, str], Signed] = OrderedDict()
        self._strikes: OrderedDict[tuple[uuid.UUID, str], int] = OrderedDict()

    def refusal(self, query_id: uuid.UUID, digest: str) -> Signed | None:
        with self._lock:
            return self._refusals.get((query_id, digest))

    def remember(self, query_id: uuid.UUID, digest: str, refusal: Signed) -> None:
        with self._lock:
            self._refusals[(query_id, digest)] = refusal
            self._strikes.pop((query_id, digest), None)
            _trim(self._refusals, self._size)

    def forget(self, query_id: uuid.UUID) -> None:
        with self._lock:
            for key in [k for k in self._refusals if k[0] == query_id]:
                del self._refusals[key]

    def strike(self, query_id: uuid.UUID, digest: str) -> bool:
        """Count one unexpected failure; True once the task has failed STRIKES times."""
        with self._lock:
            count = self._strikes.get((query_id, digest), 0) + 1
            self._strikes[(query_id, digest)] = count
            _trim(self._strikes, self._size)
            return count >= STRIKES


def _trim(items: OrderedDict[Any, Any], size: int) -> None:
    while len(items) > size:
        items.popitem(last=False)


_poisoned = _Poisoned()


def _deliver(client: httpx.Client, url: str, answer: Signed) -> bool:
    """Post an answer, retrying transient failures; a later poll re-fetches it otherwise."""
    for attempt in range(POST_ATTEMPTS):
        if attempt:
            time.sleep(0.5 * 2**attempt)
        try:
            response = _post(client, url, answer, timeout=30)
        except HubNotReached:
            continue
        if response.status_code < 300:
            return True
        if response.status_code < 500:
            # The hub closed the task (deadline passed, or already answered): nothing to retry.
            log.info("the hub did not take an answer (%s)", _error(response))
            return False
    return False


CONTRACTS = "/v1/nodes/contracts"


def publish_contracts(*, home: Path, client: httpx.Client | None = None) -> bool:
    """Post this node's signed public contracts to its hub (a pull node: the hub cannot
    fetch them). True when the hub took them."""
    identity = load_identity(home)
    if identity.hub_url is None:
        raise NotEnrolled("no hub URL is pinned: run `sauti node enroll` first")
    body = Signed(jws=datasets.signed_contracts(home=home))
    with _client(client) as http:
        response = _post(http, f"{identity.hub_url}{CONTRACTS}", body, timeout=30)
    if response.status_code >= 300:
        log.warning("the hub did not take the contracts (%s)", _error(response))
        return False
    return True


def _contracts_digest(home: Path) -> str:
    return signing.digest(
        [
            [i.contract.name, i.contract.version, i.contract_digest]
            for i in datasets.list_datasets(home=home)
        ]
    )


def _publish_if_changed(home: Path, client: httpx.Client, published: str) -> str:
    """Post the contracts when they changed since `published` (their digest); what is
    published now. Never fails the poll: the hub checks what it holds, nodes check all."""
    try:
        current = _contracts_digest(home)
        if current != published and publish_contracts(home=home, client=client):
            return current
    except (HubNotReached, NodeError) as exc:
        log.warning("pull: contracts not published (%s)", type(exc).__name__)
    return published


def run_pull(
    *,
    settings: NodeSettings,
    stop: threading.Event,
    client: httpx.Client | None = None,
    wait_seconds: float = 20,
    max_backoff_seconds: float = 60,
) -> PullStats:
    """Poll until `stop` is set; back off (with jitter) while the hub is unreachable or a
    round fails for any other reason (a database away, a disk full): the loop itself never
    dies of a task or a round, only `NotEnrolled` (nothing to poll) ends it."""
    total = PullStats()
    backoff = 1.0
    published = ""
    with _client(client) as http:
        while not stop.is_set():
            try:
                # The hub learns this node's contracts from the node itself, again whenever
                # a contract version is added (it cannot call a pull node).
                published = _publish_if_changed(settings.home, http, published)
                stats = poll_once(settings=settings, client=http, wait_seconds=wait_seconds)
            except NotEnrolled:
                raise
            except Exception as exc:
                reason = exc.message if isinstance(exc, HubNotReached) else type(exc).__name__
                log.warning("pull: %s; retrying", reason)
                stop.wait(backoff * (0.5 + secrets.randbelow(1000) / 1000))
                backoff = min(backoff * 2, max_backoff_seconds)
                continue
            backoff = 1.0
            for name in ("received", "answered", "refused", "skipped", "undelivered", "failed"):
                setattr(total, name, getattr(total, name) + getattr(stats, name))
    return total


class _client:
    """Use the caller's client as is, or a fresh one closed at the end."""

    def __init__(self, client: httpx.Client | None) -> None:
        self._given = client
        self._own: httpx.Client | None = None

    def __enter__(self) -> httpx.Client:
        if self._given is not None:
            return self._given
        self._own = httpx.Client()
        return self._own

    def __exit__(self, *_exc: object) -> None:
        if self._own is not None:
            self._own.close()


def _post(client: httpx.Client, url: str, body: BaseModel, *, timeout: float) -> httpx.Response:
    try:
        return client.post(url, json=body.model_dump(mode="json"), timeout=timeout)
    except httpx.HTTPError as exc:
        raise HubNotReached(f"the hub did not answer ({type(exc).__name__})") from exc


def _error(response: httpx.Response) -> str:
    try:
        error = ErrorResponse.model_validate_json(response.content).error
    except ValidationError:
        return f"HTTP {response.status_code}"
    return f"{error.code}: {error.message[:MAX_MESSAGE]}"
