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
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import httpx
from pydantic import BaseModel, ValidationError

from contracts import signing
from contracts.errors import ContractError
from contracts.v1 import (
    EnrollmentAccepted,
    EnrollmentRequest,
    EnrollmentSubmission,
    ErrorResponse,
    KeyRotation,
    KeyRotationSubmission,
    NodePoll,
    QueryRequest,
    Signed,
    TaskBatch,
    TaskRefusal,
)
from contracts.v1.federation import ENROLLMENT_TOKEN_PREFIX
from node.exceptions import NodeError
from node.home import (
    NodeIdentity,
    discard_next_key,
    load_identity,
    load_key,
    next_key,
    pin_hub,
    repair_identity,
    switch_key,
)
from node.metrics import observed_handle_query
from node.settings import NodeSettings
from node.sync.exceptions import EnrollmentFailed, HubNotReached, KeyRotationFailed, NotEnrolled

log = logging.getLogger(__name__)
MAX_MESSAGE = 300
POST_ATTEMPTS = 3


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


def rotate_key(*, home: Path, client: httpx.Client | None = None) -> Rotated:
    """Replace this node's key: the hub pins the new one, then the node signs with it.

    The new key is kept in a pending file before the hub is asked, and the node switches only
    once the hub has accepted it (the hub's answer names it as the current key), so a rotation
    cut short by the network is simply run again: it resumes with the same pending key.
    """
    identity = repair_identity(home)
    if identity.hub_url is None or identity.hub_id is None:
        raise NotEnrolled("no hub URL is pinned: run `sauti node enroll` first")
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
        discard_next_key(home)
        raise KeyRotationFailed(f"the hub refused the new key ({_error(response)})")
    new_kid = signing.key_id(new)
    try:
        read = _RotationRead.model_validate_json(response.content)
    except ValidationError as exc:
        raise HubNotReached("the hub's answer to the rotation is not a node record") from exc
    if read.kid != new_kid:
        raise KeyRotationFailed("the hub's answer names another key than the new one")
    switch_key(home, retired_at=datetime.now(UTC), valid_until=read.previous_valid_until)
    log.info("node key rotated from %s to %s", identity.kid, new_kid)
    return Rotated(old_kid=identity.kid, new_kid=new_kid, old_valid_until=read.previous_valid_until)


class _RotationRead(BaseModel):
    """The part of the hub's node record a rotating node checks."""

    kid: str
    previous_valid_until: datetime | None = None


@dataclass
class PullStats:
    received: int = 0
    answered: int = 0
    refused: int = 0
    skipped: int = 0
    undelivered: int = 0


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
    try:
        batch = TaskBatch.model_validate_json(response.content)
    except ValidationError as exc:
        raise HubNotReached("the hub's answer to the poll is not a task batch") from exc
    stats = PullStats(received=len(batch.tasks))
    for task in batch.tasks:
        _answer(settings=settings, identity=identity, client=client, task=task, stats=stats)
    return stats


def _answer(
    *,
    settings: NodeSettings,
    identity: NodeIdentity,
    client: httpx.Client,
    task: Signed,
    stats: PullStats,
) -> None:
    assert identity.hub_public_jwk is not None
    assert identity.hub_url is not None
    try:
        request = signing.verify_model(
            task.jws, signing.load_public_key(identity.hub_public_jwk), QueryRequest
        )
    except ContractError:
        # Not from the pinned hub: nothing to answer (handle_query would refuse it too).
        log.warning("a task that does not verify with the pinned hub key was skipped")
        stats.skipped += 1
        return
    if _aware(request.expires_at) < datetime.now(UTC):
        # A node back after days answers only what is still open; the hub closed the rest.
        log.info("expired task %s skipped", request.query_id)
        stats.skipped += 1
        return
    key = load_key(settings.home)
    try:
        answer = observed_handle_query(settings=settings, signed=task)
        path, kind = "/v1/federation/releases", "answered"
    except NodeError as exc:
        refusal = TaskRefusal(
            query_id=request.query_id,
            node_id=identity.node_id,
            request_digest=signing.digest(request),
            code=exc.code,
            message=exc.message[:MAX_MESSAGE],
            refused_at=datetime.now(UTC),
        )
        answer = Signed(jws=signing.sign(refusal, key))
        path, kind = "/v1/federation/refusals", "refused"
    if _deliver(client, f"{identity.hub_url}{path}", answer):
        setattr(stats, kind, getattr(stats, kind) + 1)
    else:
        stats.undelivered += 1


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


def run_pull(
    *,
    settings: NodeSettings,
    stop: threading.Event,
    client: httpx.Client | None = None,
    wait_seconds: float = 20,
    max_backoff_seconds: float = 60,
) -> PullStats:
    """Poll until `stop` is set; back off (with jitter) while the hub is unreachable."""
    total = PullStats()
    backoff = 1.0
    with _client(client) as http:
        while not stop.is_set():
            try:
                stats = poll_once(settings=settings, client=http, wait_seconds=wait_seconds)
            except HubNotReached as exc:
                log.warning("pull: %s; retrying", exc.message)
                stop.wait(backoff * (0.5 + secrets.randbelow(1000) / 1000))
                backoff = min(backoff * 2, max_backoff_seconds)
                continue
            backoff = 1.0
            for name in ("received", "answered", "refused", "skipped", "undelivered"):
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


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
