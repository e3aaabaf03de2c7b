"""Pull mode at the hub: hand a polling node its open tasks, take back signed answers.

A pull node opens no port. It proves who it is on every message with its enrolled key; a
poll is fresh and single-use (nonce), a release must answer a task that is open for that
very node, and anything else is refused, logged and stores nothing.
"""

import logging
from datetime import UTC, datetime, timedelta

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from contracts.v1 import NodePoll, Release, Signed, TaskBatch, TaskRefusal
from hub.home import HubIdentity
from hub.nodes.exceptions import NodeMessageRejected
from hub.nodes.models import Node
from hub.nodes.service import check_fresh, verify_node_message
from hub.queries import service as queries
from hub.queries.exceptions import ReleaseRejected, TaskUnknown
from hub.queries.models import QueryNodeRow, QueryRow
from hub.queries.releases import check_release, sent_digest, sent_request
from hub.settings import HubSettings

log = logging.getLogger("hub.federation")


def accept_poll(
    *, session: Session, identity: HubIdentity, signed: Signed, settings: HubSettings
) -> tuple[str, NodePoll]:
    """Authenticate a poll; returns the node id. Refusals raise (and are logged by the caller)."""
    now = datetime.now(UTC)
    node, poll = verify_node_message(session=session, token=signed.jws, model=NodePoll, now=now)
    if poll.hub_id != identity.hub_id:
        raise NodeMessageRejected("the poll names another hub")
    check_fresh(
        session=session,
        node_id=node.node_id,
        nonce=poll.nonce,
        issued_at=poll.issued_at,
        now=now,
        skew_seconds=settings.node_clock_skew_seconds,
    )
    session.commit()
    return node.node_id, poll


def collect_tasks(
    *, session: Session, node_id: str, max_tasks: int, lease_seconds: float
) -> TaskBatch:
    """Open, unexpired tasks of this node not handed out within the lease, oldest first."""
    now = datetime.now(UTC)
    lease_start = now - timedelta(seconds=lease_seconds)
    rows = session.scalars(
        select(QueryNodeRow)
        .where(
            QueryNodeRow.node_id == node_id,
            QueryNodeRow.outcome == "pending",
            QueryNodeRow.mode != "secure",
            QueryNodeRow.expires_at > now,
            or_(QueryNodeRow.sent_at.is_(None), QueryNodeRow.sent_at < lease_start),
        )
        .order_by(QueryNodeRow.id)
        .limit(max_tasks)
        .with_for_update(skip_locked=True)
    ).all()
    for row in rows:
        row.sent_at, row.attempts = now, row.attempts + 1
    tasks = tuple(Signed(jws=r.request_jws) for r in rows)
    session.commit()
    return TaskBatch(tasks=tasks)


def release_outcome(*, session: Session, signed: Signed) -> queries.Outcome:
    """A node's release, verified against its open task, as the outcome to record (by the
    process's `Recorder`, with whatever else arrived: the same batched path as push answers).
    Refusals raise; nothing is stored here."""
    now = datetime.now(UTC)
    node, release = verify_node_message(session=session, token=signed.jws, model=Release, now=now)
    task, query = _open_task(session, node=node, query_id=str(release.query_id))
    rules = query.rules or {}
    version = rules.get("contract_version")
    # Signature verified above with the node's pinned key(s): check only what it answers.
    check_release(
        release,
        request=sent_request(task.request_jws),
        contract_version=int(version) if version is not None else None,
        request_digest=sent_digest(task.request_jws),
    )
    session.rollback()
    return queries.Outcome(
        query_id=str(release.query_id),
        node_id=node.node_id,
        outcome="ok",
        release=release,
        release_jws=signed.jws,
    )


def refusal_outcome(*, session: Session, signed: Signed) -> queries.Outcome:
    """A pull node's signed refusal, checked against its open task, as the outcome to record:
    the task closes as refused with the node's own reason."""
    now = datetime.now(UTC)
    node, refusal = verify_node_message(
        session=session, token=signed.jws, model=TaskRefusal, now=now
    )
    task, _query = _open_task(session, node=node, query_id=str(refusal.query_id))
    if refusal.request_digest != sent_digest(task.request_jws):
        raise ReleaseRejected("the refusal does not answer the request that was sent")
    session.rollback()
    return queries.Outcome(
        query_id=str(refusal.query_id),
        node_id=node.node_id,
        outcome="refused",
        error_code=refusal.code,
        message=refusal.message,
    )


def _open_task(session: Session, *, node: Node, query_id: str) -> tuple[QueryNodeRow, QueryRow]:
    task = session.scalars(
        select(QueryNodeRow).where(
            QueryNodeRow.query_id == query_id, QueryNodeRow.node_id == node.node_id
        )
    ).one_or_none()
    query = session.get(QueryRow, query_id)
    if task is None or query is None or task.outcome != "pending" or task.mode == "secure":
        # Never sent to this node, already closed (duplicate, or after the deadline), or a
        # secure aggregation task, which takes no per-node release.
        raise TaskUnknown()
    return task, query
