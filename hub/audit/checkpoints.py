"""Node checkpoints at the hub: receive a node's signed chain head, and tell which nodes
are overdue with theirs.

Above the audit log and the node registry (it verifies with a node's pinned keys and
appends to the log), so neither imports the other to reach it.
"""

from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from contracts.v1.audit import AuditCheckpoint, at_text
from hub.audit.exceptions import CheckpointConflict, CheckpointInvalid
from hub.audit.models import CheckpointRow
from hub.audit.schemas import CheckpointRead, NodeCheckpointStatus
from hub.audit.service import append, checkpoint_read
from hub.nodes.exceptions import NodeRemoved
from hub.nodes.models import Node
from hub.nodes.service import verify_node_record
from hub.queries.models import QueryNodeRow


def receive_checkpoint(
    *, session: Session, node_id: str, jws: str, skew_seconds: int = 300
) -> CheckpointRead:
    """Keep a node's signed chain head, verified against the key it had when it signed it.

    A checkpoint signed before a key rotation and published after it verifies under the
    retired key (its `signed_at` falls in that key's time). The same head again is accepted
    (idempotent); a different hash for a sequence number the node already signed is refused
    and recorded: that node rewrote its log.
    """
    node, checkpoint = verify_node_record(
        session=session,
        token=jws,
        model=AuditCheckpoint,
        signed_at=lambda c: c.signed_at,
        skew_seconds=skew_seconds,
    )
    if node.status == "removed":
        raise NodeRemoved()
    if node.node_id != node_id:
        raise CheckpointInvalid("the checkpoint is signed by another node than the one in the path")
    existing = _held(session, node_id=node_id, seq=checkpoint.seq)
    if existing is not None:
        return _same_or_conflict(session, existing, node_id=node_id, checkpoint=checkpoint)
    row = CheckpointRow(
        node_id=node_id,
        seq=checkpoint.seq,
        hash=checkpoint.hash,
        signed_at=at_text(checkpoint.signed_at),
        received_at=at_text(datetime.now(UTC)),
        jws=jws,
    )
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:
        # Another copy of this checkpoint was stored by a concurrent request first (the
        # unique (node_id, seq) made this one wait for it): answer as for a repeat.
        existing = _held(session, node_id=node_id, seq=checkpoint.seq)
        if existing is None:
            raise
        return _same_or_conflict(session, existing, node_id=node_id, checkpoint=checkpoint)
    append(
        session=session,
        actor=f"node:{node_id}",
        action="audit.checkpoint_received",
        object=f"node:{node_id}",
        details={"node": node_id, "seq": checkpoint.seq, "hash": checkpoint.hash},
    )
    session.commit()
    return checkpoint_read(row)


def _held(session: Session, *, node_id: str, seq: int) -> CheckpointRow | None:
    return session.scalars(
        select(CheckpointRow).where(CheckpointRow.node_id == node_id, CheckpointRow.seq == seq)
    ).first()


def _same_or_conflict(
    session: Session, existing: CheckpointRow, *, node_id: str, checkpoint: AuditCheckpoint
) -> CheckpointRead:
    """The same head again is accepted as it was; another hash at that seq is refused."""
    if existing.hash == checkpoint.hash:
        return checkpoint_read(existing)
    append(
        session=session,
        actor=f"node:{node_id}",
        action="audit.checkpoint_conflict",
        object=f"node:{node_id}",
        details={"node": node_id, "seq": checkpoint.seq, "hash": checkpoint.hash},
    )
    session.commit()
    raise CheckpointConflict()


# A node writes at least this many entries for each task it answers (request, decision).
ENTRIES_PER_ANSWER = 2
# Task outcomes the node itself wrote to its log for (a release or its own refusal).
_ANSWERED = ("ok", "refused")


def checkpoint_status(*, session: Session, overdue_entries: int) -> list[NodeCheckpointStatus]:
    """Per registered node: the newest checkpoint the hub holds and what it answered since.

    The hub cannot count a node's entries, only the tasks it answered; each is at least
    `ENTRIES_PER_ANSWER` entries, so a node shown overdue certainly has more than
    `overdue_entries` entries without a signed copy here (0: nobody is flagged).
    """
    newest: dict[str, CheckpointRow] = {}
    for row in session.scalars(select(CheckpointRow).order_by(CheckpointRow.seq)):
        newest[row.node_id] = row
    found = []
    for node in session.scalars(select(Node).order_by(Node.node_id)):
        held = newest.get(node.node_id)
        stmt = select(func.count()).where(
            QueryNodeRow.node_id == node.node_id, QueryNodeRow.outcome.in_(_ANSWERED)
        )
        if held is not None:
            stmt = stmt.where(QueryNodeRow.answered_at > datetime.fromisoformat(held.received_at))
        answers = int(session.scalar(stmt) or 0)
        found.append(
            NodeCheckpointStatus(
                node_id=node.node_id,
                node_status=node.status,
                newest_seq=held.seq if held else None,
                newest_signed_at=datetime.fromisoformat(held.signed_at) if held else None,
                newest_received_at=datetime.fromisoformat(held.received_at) if held else None,
                answers_since=answers,
                overdue=node.status == "active"
                and overdue_entries > 0
                and answers * ENTRIES_PER_ANSWER > overdue_entries,
            )
        )
    return found
