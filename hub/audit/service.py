"""Append to, search, verify and export the hub's audit chain; receive node checkpoints."""

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from contracts.v1.audit import (
    GENESIS,
    AuditCheckpoint,
    AuditEntry,
    AuditExportHeader,
    AuditFilter,
    AuditVerification,
    at_text,
    csv_chunks,
    first_bad_seq,
    matches,
    next_entry,
    stored_entry,
    verify_log,
)
from hub.audit.exceptions import CheckpointConflict, CheckpointInvalid
from hub.audit.models import AuditHead, AuditRow, CheckpointRow
from hub.audit.schemas import CheckpointRead, NodeCheckpointStatus
from hub.db import read_only
from hub.home import HubIdentity

BATCH = 5000


@dataclass(frozen=True)
class Event:
    """One entry to append: `details` holds ids, codes and costs only, never data."""

    actor: str
    action: str
    object: str
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Tip:
    """The chain head as locked by one transaction (kept in `session.info` for that txn)."""

    transaction: object
    seq: int
    hash: str


# Built once and run through Core: appends sit on the federation's per-answer path, so no
# ORM unit of work, one multi-row insert and one head update per call.
_INSERT = insert(AuditRow)
_LOCK_HEAD = select(AuditHead.seq, AuditHead.hash).where(AuditHead.id == 1).with_for_update()
_READ_HEAD = select(AuditHead.seq, AuditHead.hash).where(AuditHead.id == 1)
_MOVE_HEAD = (
    update(AuditHead)
    .where(AuditHead.id == 1)
    .values(seq=bindparam("tip_seq"), hash=bindparam("tip_hash"))
)
_TIP_KEY = "audit_tip"


def append(
    *, session: Session, actor: str, action: str, object: str, details: dict[str, Any] | None = None
) -> AuditEntry:
    """Add one entry in the caller's transaction; `details` holds ids, codes and costs only."""
    event = Event(actor=actor, action=action, object=object, details=details or {})
    return append_many(session=session, events=[event])[-1]


def append_many(*, session: Session, events: Sequence[Event]) -> list[AuditEntry]:
    """Add entries in order in the caller's transaction (the head is locked once per txn)."""
    if not events:
        return []
    tip = _locked_tip(session)
    entries_: list[AuditEntry] = []
    for event in events:
        entry = next_entry(
            prev_seq=tip.seq,
            prev_hash=tip.hash,
            at=datetime.now(UTC),
            actor=event.actor,
            action=event.action,
            object=event.object,
            details=event.details,
        )
        entries_.append(entry)
        tip.seq, tip.hash = entry.seq, entry.hash
    connection = session.connection()
    connection.execute(
        _INSERT,
        [
            {
                "seq": e.seq,
                "at": at_text(e.at),
                "actor": e.actor,
                "action": e.action,
                "object": e.object,
                "details": json.dumps(e.details, sort_keys=True, separators=(",", ":")),
                "prev_hash": e.prev_hash,
                "hash": e.hash,
            }
            for e in entries_
        ],
    )
    connection.execute(_MOVE_HEAD, {"tip_seq": tip.seq, "tip_hash": tip.hash})
    return entries_


def _locked_tip(session: Session) -> _Tip:
    # Locked once per transaction (FOR UPDATE on PostgreSQL; BEGIN IMMEDIATE holds SQLite's
    # write lock); keyed by the innermost transaction, so a rolled-back savepoint or a later
    # transaction of the same session always reads the head again.
    transaction = session.get_nested_transaction() or session.get_transaction()
    cached = session.info.get(_TIP_KEY)
    if isinstance(cached, _Tip) and cached.transaction is transaction:
        return cached
    connection = session.connection()
    found = connection.execute(_LOCK_HEAD).first()
    if found is None:
        try:
            with session.begin_nested():
                session.connection().execute(insert(AuditHead).values(id=1, seq=0, hash=GENESIS))
        except IntegrityError:
            pass  # another writer created it first; lock theirs
        found = connection.execute(_LOCK_HEAD).one()
    tip = _Tip(transaction=transaction, seq=found[0], hash=found[1])
    session.info[_TIP_KEY] = tip
    return tip


def _from_row(row: AuditRow, *, lenient: bool = False) -> AuditEntry:
    return stored_entry(
        seq=row.seq,
        at=row.at,
        actor=row.actor,
        action=row.action,
        object=row.object,
        details=row.details,
        prev_hash=row.prev_hash,
        hash=row.hash,
        lenient=lenient,
    )


def iter_entries(
    *,
    session: Session,
    flt: AuditFilter | None = None,
    upto: int | None = None,
    lenient: bool = False,
) -> Iterator[AuditEntry]:
    """Entries in sequence order, in batches, so a long chain streams in constant memory.

    `upto` stops at a snapshot's head: entries never change once written, so those up to it
    read the same in later statements, whatever is appended meanwhile.
    """
    after = 0
    while True:
        stmt = select(AuditRow).where(AuditRow.seq > after)
        if upto is not None:
            stmt = stmt.where(AuditRow.seq <= upto)
        if flt is not None and flt.since is not None:
            stmt = stmt.where(AuditRow.at >= at_text(flt.since))
        if flt is not None and flt.until is not None:
            stmt = stmt.where(AuditRow.at < at_text(flt.until))
        if flt is not None and flt.analyst is not None:
            stmt = stmt.where(AuditRow.actor == f"user:{flt.analyst}")
        if flt is not None and flt.action is not None:
            stmt = stmt.where(AuditRow.action == flt.action)
        rows = session.scalars(stmt.order_by(AuditRow.seq).limit(BATCH))
        batch = [_from_row(r, lenient=lenient) for r in rows]
        if not batch:
            return
        after = batch[-1].seq
        for entry in batch:
            if flt is None or matches(entry, flt):
                yield entry


def entries(*, session: Session) -> list[AuditEntry]:
    return list(iter_entries(session=session))


def search(
    *, session: Session, flt: AuditFilter, after_seq: int = 0, limit: int = 100
) -> list[AuditEntry]:
    """At most `limit` matching entries after `after_seq` (page on with the last seq)."""
    found: list[AuditEntry] = []
    for entry in iter_entries(session=session, flt=flt):
        if entry.seq > after_seq:
            found.append(entry)
            if len(found) >= limit:
                break
    return found


def head(*, session: Session) -> tuple[int, str]:
    # Core, not session.get: appends move the head through Core, so an ORM copy could be stale.
    row = session.execute(_READ_HEAD).first()
    return (row[0], row[1]) if row is not None else (0, GENESIS)


def verify_chain(*, session: Session) -> int | None:
    """The first broken sequence number, or None when the chain holds."""
    return first_bad_seq(iter_entries(session=session))


def snapshot(*, session: Session) -> tuple[tuple[int, str], int]:
    """The head and the highest stored entry, read in one statement (one snapshot)."""
    tip = session.execute(_SNAPSHOT).one()
    found = (tip[0], tip[1]) if tip[0] is not None else (0, GENESIS)
    return found, tip[2] or 0


_SNAPSHOT = select(
    select(AuditHead.seq).where(AuditHead.id == 1).scalar_subquery(),
    select(AuditHead.hash).where(AuditHead.id == 1).scalar_subquery(),
    select(func.max(AuditRow.seq)).scalar_subquery(),
)


def verify(*, session: Session, identity: HubIdentity) -> AuditVerification:
    """The hub's own chain up to the head it reads first (node checkpoints: per node log).

    Entries appended while it runs are left to the next run, so it verifies a busy hub.
    It only reads: on a session not yet in a transaction, SQLite reads a snapshot without
    taking the write lock, so a long chain's check never holds up the hub's writers.
    """
    if not session.in_transaction():
        read_only(session)
    tip, last_seq = snapshot(session=session)
    return verify_log(
        side="hub",
        owner_id=identity.hub_id,
        entries=iter_entries(session=session, upto=tip[0], lenient=True),
        head=tip,
        last_seq=last_seq,
        checkpoints=[],
        public_jwk=None,
    )


# --- node checkpoints ---------------------------------------------------------------------


def receive_checkpoint(
    *, session: Session, node_id: str, jws: str, skew_seconds: int = 300
) -> CheckpointRead:
    """Keep a node's signed chain head, verified against the key it had when it signed it.

    A checkpoint signed before a key rotation and published after it verifies under the
    retired key (its `signed_at` falls in that key's time). The same head again is accepted
    (idempotent); a different hash for a sequence number the node already signed is refused
    and recorded: that node rewrote its log.
    """
    # Imported here: federation's service imports this module (to append) at import time.
    from hub.federation.exceptions import NodeRemoved  # noqa: PLC0415
    from hub.federation.service import verify_node_record  # noqa: PLC0415

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
    return _checkpoint_read(row)


def _held(session: Session, *, node_id: str, seq: int) -> CheckpointRow | None:
    return session.scalars(
        select(CheckpointRow).where(CheckpointRow.node_id == node_id, CheckpointRow.seq == seq)
    ).first()


def _same_or_conflict(
    session: Session, existing: CheckpointRow, *, node_id: str, checkpoint: AuditCheckpoint
) -> CheckpointRead:
    """The same head again is accepted as it was; another hash at that seq is refused."""
    if existing.hash == checkpoint.hash:
        return _checkpoint_read(existing)
    append(
        session=session,
        actor=f"node:{node_id}",
        action="audit.checkpoint_conflict",
        object=f"node:{node_id}",
        details={"node": node_id, "seq": checkpoint.seq, "hash": checkpoint.hash},
    )
    session.commit()
    raise CheckpointConflict()


def _checkpoint_read(row: CheckpointRow) -> CheckpointRead:
    return CheckpointRead(
        node_id=row.node_id,
        seq=row.seq,
        hash=row.hash,
        signed_at=datetime.fromisoformat(row.signed_at),
        received_at=datetime.fromisoformat(row.received_at),
        jws=row.jws,
    )


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
    # Imported here: federation's service imports this module (to append) at import time.
    from hub.federation.models import Node  # noqa: PLC0415
    from hub.queries.models import QueryNodeRow  # noqa: PLC0415

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


def list_checkpoints(*, session: Session, node_id: str | None = None) -> list[CheckpointRead]:
    stmt = select(CheckpointRow).order_by(CheckpointRow.node_id, CheckpointRow.seq)
    if node_id is not None:
        stmt = stmt.where(CheckpointRow.node_id == node_id)
    return [_checkpoint_read(r) for r in session.scalars(stmt)]


# --- exports -------------------------------------------------------------------------------


def record_export(*, session: Session, actor: str, fmt: str, flt: AuditFilter) -> None:
    """Who took a copy of the log, in what form and filtered how, goes in the log itself."""
    append(
        session=session,
        actor=actor,
        action="audit.exported",
        object="audit",
        details={"format": fmt, "filter": flt.model_dump(mode="json", exclude_none=True)},
    )
    session.commit()


def export_jsonl(
    *, session: Session, identity: HubIdentity, flt: AuditFilter | None = None
) -> Iterator[str]:
    """JSON Lines: an AuditExportHeader (with every node checkpoint), then one entry a line."""
    exported_at = datetime.now(UTC)  # before the head is read: the snapshot's moment
    seq, digest = head(session=session)
    header = AuditExportHeader(
        side="hub",
        owner_id=identity.hub_id,
        public_jwk=identity.public_jwk,
        exported_at=exported_at,
        head_seq=seq,
        head_hash=digest,
        complete=flt is None or flt == AuditFilter(),
        checkpoints=tuple(c.jws for c in list_checkpoints(session=session)),
    )
    yield header.model_dump_json() + "\n"
    # Entries appended during the export are after the header's head: not part of it.
    for entry in iter_entries(session=session, flt=flt, upto=seq):
        yield entry.model_dump_json() + "\n"


def export_csv(*, session: Session, flt: AuditFilter | None = None) -> Iterator[str]:
    """CSV for spreadsheets: one row per entry, `details` as compact JSON."""
    return csv_chunks(iter_entries(session=session, flt=flt))
