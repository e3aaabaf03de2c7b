"""Push delivery: send one node its signed request, retry what is safe, record the outcome.

The same coroutine runs in the hub's own event loop (the embedded default) and on a Celery
worker's loop; each has one shared `httpx.AsyncClient`.
"""

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import partial

import anyio.to_thread
import httpx
from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from contracts.v1 import ErrorResponse, Release, Signed
from contracts.v1.result import NodeOutcome
from hub.db import read_only
from hub.home import rotation_headers
from hub.nodes.models import Node
from hub.nodes.service import node_keys
from hub.queries import service as queries
from hub.queries.calls import PushCall
from hub.queries.exceptions import ReleaseRejected
from hub.queries.models import QueryNodeRow, QueryRow
from hub.queries.releases import sent_digest, sent_request, verified_release
from hub.queries.transport import ResponseTooLarge, post_node
from hub.settings import HubSettings

log = logging.getLogger("hub.federation")
MAX_NODE_MESSAGE = 300
# Hub-side failures recorded on a node's task (the node's own codes come from its answer).
DELIVERY_FAILED = "delivery_failed"
RECORD_FAILED = "record_failed"


@dataclass(frozen=True)
class CallOutcome:
    node_id: str
    outcome: NodeOutcome
    error_code: str | None = None
    message: str | None = None
    release: Release | None = None
    release_jws: str | None = None
    attempts: int = 1
    # The verified payload of `release_jws` (the release's canonical JSON), as stored.
    release_json: str | None = None


class _Retryable(Exception):
    """A 5xx answer: the node may succeed on the same (idempotent) request."""


def load_push_calls(
    *, session: Session, query_id: str, node_ids: Sequence[str] | None = None
) -> list[PushCall]:
    """The pending tasks of push nodes (all, or `node_ids`), read in one go before any I/O."""
    calls = _push_calls(read_only(session), query_id=query_id, node_ids=node_ids)
    session.rollback()
    return calls


def load_calls(
    sessions: sessionmaker[Session], wanted: Sequence[tuple[str, str]]
) -> list[PushCall | None]:
    """The pending push deliveries for these (query id, node id) pairs, read in one
    transaction (one read per query, whatever the number of its nodes); None where there is
    none to make (closed already, a pull node, a node removed...)."""
    by_query: dict[str, list[str]] = {}
    for query_id, node_id in wanted:
        by_query.setdefault(query_id, []).append(node_id)
    found: dict[tuple[str, str], PushCall] = {}
    with sessions() as session:
        read_only(session)
        for query_id, node_ids in by_query.items():
            for call in _push_calls(session, query_id=query_id, node_ids=node_ids):
                found[(query_id, call.node_id)] = call
        session.rollback()
    return [found.get(pair) for pair in wanted]


def _push_calls(
    session: Session, *, query_id: str, node_ids: Sequence[str] | None
) -> list[PushCall]:
    now = datetime.now(UTC)
    query = session.get(QueryRow, query_id)
    stmt = select(QueryNodeRow).where(
        QueryNodeRow.query_id == query_id, QueryNodeRow.outcome == "pending"
    )
    if node_ids is not None:
        stmt = stmt.where(QueryNodeRow.node_id.in_(node_ids))
    tasks = list(session.scalars(stmt))
    nodes = {
        n.node_id: n
        for n in session.scalars(select(Node).where(Node.node_id.in_([t.node_id for t in tasks])))
    }
    # Everything is read before the transaction ends: rollback expires the rows, and touching
    # one afterwards would reload it with a query of its own (two per node per query).
    calls = []
    if query is not None and query.deadline is not None:
        rules = query.rules or {}
        version = rules.get("contract_version")
        deadline = query.deadline
        for task in tasks:
            node = nodes.get(task.node_id)
            if node is None or node.status != "active" or node.mode == "pull" or not node.url:
                continue
            calls.append(
                PushCall(
                    query_id=query_id,
                    node_id=task.node_id,
                    url=node.url,
                    jws=task.request_jws,
                    request=sent_request(task.request_jws),
                    keys=dict(node_keys(node, now=now)),
                    contract_version=int(version) if version is not None else None,
                    deadline=deadline,
                    request_digest=sent_digest(task.request_jws),
                )
            )
    return calls


def claim_stale(
    *, session: Session, older_than_seconds: float, now: datetime | None = None, limit: int = 500
) -> list[tuple[str, str]]:
    """Push tasks still pending `older_than_seconds` after they were last sent: claimed (their
    `sent_at` set now, rows locked past other hub replicas) and returned to be sent again.

    A delivery is lost when the broker loses its message (a Redis restart without
    persistence), when publishing failed, or when the hub process stopped with deliveries in
    flight; resending is safe because the node answers a known query id from its store.
    """
    now = now or datetime.now(UTC)
    cutoff = now - timedelta(seconds=older_than_seconds)
    rows = session.scalars(
        select(QueryNodeRow)
        .join(QueryRow, QueryRow.query_id == QueryNodeRow.query_id)
        .where(
            QueryNodeRow.outcome == "pending",
            # Pull tasks are collected; secure ones run together (hub.queries.secure).
            QueryNodeRow.mode == "push",
            QueryRow.status == "running",
            QueryRow.deadline > now,
            func.coalesce(QueryNodeRow.sent_at, QueryRow.created_at) < cutoff,
        )
        .order_by(QueryNodeRow.id)
        .limit(limit)
        .with_for_update(of=QueryNodeRow, skip_locked=True)
    ).all()
    claimed = [(r.query_id, r.node_id) for r in rows]
    for row in rows:
        row.sent_at = now
    session.commit()
    return claimed


def due_queries(*, session: Session, now: datetime | None = None) -> list[str]:
    """Running queries whose deadline has passed (their deadline timer or task was lost)."""
    now = now or datetime.now(UTC)
    ids = list(
        read_only(session).scalars(
            select(QueryRow.query_id).where(QueryRow.status == "running", QueryRow.deadline <= now)
        )
    )
    session.rollback()
    return ids


def to_outcome(call: PushCall, result: CallOutcome) -> queries.Outcome:
    return queries.Outcome(
        query_id=call.query_id,
        node_id=call.node_id,
        outcome=result.outcome,
        error_code=result.error_code,
        message=result.message,
        release=result.release,
        release_jws=result.release_jws,
        attempts=result.attempts,
        release_json=result.release_json,
    )


async def deliver(
    *,
    client: httpx.AsyncClient,
    sessions: sessionmaker[Session],
    settings: HubSettings,
    query_id: str,
    node_id: str,
    load: Callable[[str, str], Awaitable[PushCall | None]] | None = None,
    record: Callable[[queries.Outcome], Awaitable[bool]] | None = None,
) -> bool:
    """Deliver one task and record its outcome (a Celery task's work); True if stored.

    `load` and `record`: the process's grouped reader and group-committing writer
    (`hub.queries.batching`); without them, the task is read and its outcome recorded in
    transactions of its own.

    Never raises: a delivery that fails in the hub itself is recorded as `failed` with
    `delivery_failed` (resending it would fail the same way until the deadline), and one
    whose outcome cannot be recorded is left to the sweeper, which sends it again."""

    def load_one() -> list[PushCall]:
        with sessions() as session:
            return load_push_calls(session=session, query_id=query_id, node_ids=[node_id])

    if load is not None:
        found = await load(query_id, node_id)
        calls = [found] if found is not None else []
    else:
        try:
            calls = await anyio.to_thread.run_sync(load_one)
        except Exception as exc:
            log.error("loading query %s for node %s failed (%s)", query_id, node_id, _name(exc))
            return False
    if not calls:
        return False
    (call,) = calls
    try:
        result = await post_with_retries(client=client, call=call, settings=settings)
    except Exception as exc:
        log.error("delivery to node %s for query %s failed (%s)", node_id, query_id, _name(exc))
        result = delivery_failed(node_id)
    outcome = to_outcome(call, result)
    if record is not None:
        return await record(outcome)
    (stored,) = await anyio.to_thread.run_sync(partial(record_safely, sessions, [outcome]))
    if not stored:
        log.warning("late or duplicate answer from node %s for query %s dropped", node_id, query_id)
    return stored


def delivery_failed(node_id: str) -> CallOutcome:
    """What a delivery that failed in the hub itself (not at the node) is recorded as."""
    return CallOutcome(
        node_id=node_id,
        outcome="failed",
        error_code=DELIVERY_FAILED,
        message="the hub could not deliver this request",
    )


def record_safely(sessions: sessionmaker[Session], outcomes: list[queries.Outcome]) -> list[bool]:
    """Record outcomes in one transaction; if that fails, each on its own, and one that still
    fails as `failed` with `record_failed` and without its release: one poisoned answer never
    loses the others, nor comes back on every sweep. False where nothing was stored (a late or
    duplicate answer, or the database away: the sweeper then sends the task again)."""
    try:
        with sessions() as session:
            return queries.record_outcomes(session=session, outcomes=outcomes)
    except Exception as exc:
        if len(outcomes) > 1:
            log.error("recording %d node answers together failed (%s)", len(outcomes), _name(exc))
            return [record_safely(sessions, [item])[0] for item in outcomes]
        (item,) = outcomes
        log.error(
            "recording the answer of node %s to query %s failed (%s)",
            item.node_id,
            item.query_id,
            _name(exc),
        )
        if item.error_code == RECORD_FAILED:
            return [False]
    stripped = queries.Outcome(
        query_id=item.query_id,
        node_id=item.node_id,
        outcome="failed",
        error_code=RECORD_FAILED,
        message="the hub could not record this node's answer",
        attempts=item.attempts,
    )
    try:
        with sessions() as session:
            return queries.record_outcomes(session=session, outcomes=[stripped])
    except Exception as exc:
        log.error("recording a failed answer failed too (%s)", _name(exc))
        return [False]


def _name(exc: BaseException) -> str:
    # The type only: an exception's text may carry SQL parameters or node data.
    return type(exc).__name__


async def post_with_retries(
    *,
    client: httpx.AsyncClient,
    call: PushCall,
    settings: HubSettings,
    headers: Mapping[str, str] | None = None,
) -> CallOutcome:
    """One outcome; never raises for a node's failure. Stops retrying at the deadline.

    `headers`: `rotation_headers` as read once for a batch of deliveries sent together
    (read here when not given), after their requests were signed."""

    def outcome(kind: NodeOutcome, code: str, message: str) -> CallOutcome:
        return CallOutcome(node_id=call.node_id, outcome=kind, error_code=code, message=message)

    url = f"{call.url}/v1/queries"
    # `Signed(jws=...)` as JSON; the token is the hub's own (base64url and dots: no escaping).
    body = b'{"jws":"' + call.jws.encode("ascii") + b'"}'
    # During a hub key rotation's overlap every push request carries the announcement, so
    # the node pins the new key on this contact (the request itself is signed with it).
    if headers is None:
        headers = rotation_headers(settings.home)
    last = outcome("failed", "node_unreachable", "the node could not be reached")
    attempts = 0
    for attempt in range(settings.node_retries + 1):
        if attempt:
            # Exponential backoff with full jitter; resending the same signed request is
            # safe because the node answers a known query id from its stored release.
            delay = settings.node_backoff_seconds * 2 ** (attempt - 1)
            await asyncio.sleep(random.uniform(0, delay))  # noqa: S311
        remaining = (call.deadline - datetime.now(UTC)).total_seconds()
        if remaining <= 0:
            return replace(
                outcome("timeout", "node_timeout", "the node did not answer before the deadline"),
                attempts=max(attempts, 1),
            )
        attempts += 1
        try:
            status, content = await post_node(
                client,
                url,
                body,
                headers=headers,
                timeout=min(settings.node_timeout_seconds, remaining),
                max_bytes=settings.node_response_max_bytes,
            )
            if status >= 500:
                raise _Retryable
        except ResponseTooLarge:
            log.warning(
                "node %s answered query %s with too large a body", call.node_id, call.query_id
            )
            return replace(
                outcome("failed", "response_too_large", "the node's answer is too large"),
                attempts=attempts,
            )
        except httpx.TimeoutException:
            last = outcome("timeout", "node_timeout", "the node did not answer in time")
            continue
        except httpx.TransportError:
            last = outcome("failed", "node_unreachable", "the node could not be reached")
            continue
        except _Retryable:
            # Kept with the node's own code when it gave one (`release_failed`, ...).
            last = replace(_refused(call, status, content), outcome="failed")
            if last.error_code == f"http_{status}":
                last = outcome("failed", "node_error", "the node answered with a server error")
            continue
        if status >= 400:
            return replace(_refused(call, status, content), attempts=attempts)
        return _verified(call, content, attempts=attempts)
    return replace(last, attempts=max(attempts, 1))


def _refused(call: PushCall, status: int, content: bytes) -> CallOutcome:
    try:
        error = ErrorResponse.model_validate_json(content).error
        code, message = error.code[:100], error.message[:MAX_NODE_MESSAGE]
    except ValidationError:
        code, message = f"http_{status}", "the node refused the request"
    return CallOutcome(node_id=call.node_id, outcome="refused", error_code=code, message=message)


def _verified(call: PushCall, content: bytes, *, attempts: int = 1) -> CallOutcome:
    """Accept only a release signed by the pinned key that answers exactly what was sent."""
    try:
        token = Signed.model_validate_json(content).jws
        release, payload = verified_release(
            token=token,
            request=call.request,
            keys=call.keys,
            contract_version=call.contract_version,
            request_digest=call.request_digest,
        )
    except (ValidationError, ReleaseRejected) as exc:
        message = exc.message if isinstance(exc, ReleaseRejected) else "not a signed release"
        log.warning("node %s sent an invalid release for query %s", call.node_id, call.query_id)
        return CallOutcome(
            node_id=call.node_id,
            outcome="failed",
            error_code="release_invalid",
            message=message,
            attempts=attempts,
        )
    return CallOutcome(
        node_id=call.node_id,
        outcome="ok",
        release=release,
        release_jws=token,
        attempts=attempts,
        release_json=payload.decode("utf-8"),
    )
