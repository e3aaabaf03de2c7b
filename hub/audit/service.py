"""The hub's audit chain on `runtime.audit_log`: append, search, verify and export it.

Node checkpoints the hub receives are `hub.audit.checkpoints`; the chain maths is
`contracts.v1.audit`.
"""

from collections.abc import Iterator
from contextlib import nullcontext
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from contracts.v1.audit import (
    AuditEntry,
    AuditExportHeader,
    AuditFilter,
    AuditVerification,
    csv_chunks,
    first_bad_seq,
    verify_log,
)
from hub.audit.models import AuditHead, AuditRow, CheckpointRow
from hub.audit.schemas import CheckpointRead
from hub.home import HubIdentity
from runtime.audit_log import AuditLog, EntrySearch, Event
from runtime.db import read_only

__all__ = ["LOG", "Event", "append", "append_many"]

LOG = AuditLog(entries=AuditRow, head=AuditHead)


def append(
    *, session: Session, actor: str, action: str, object: str, details: dict[str, Any] | None = None
) -> int:
    """Add one entry in the caller's transaction; `details` holds ids, codes and costs only."""
    return LOG.append(session, actor=actor, action=action, object=object, details=details)


def append_many(*, session: Session, events: list[Event]) -> list[int]:
    """Add entries in order in the caller's transaction (the head is locked once per txn)."""
    return LOG.append_many(session, events)


def iter_entries(
    *,
    session: Session,
    flt: AuditFilter | None = None,
    upto: int | None = None,
    lenient: bool = False,
) -> Iterator[AuditEntry]:
    """Entries in sequence order, in batches, all read in the caller's session."""
    return LOG.iter_entries(lambda: nullcontext(session), flt=flt, upto=upto, lenient=lenient)


def entries(*, session: Session) -> list[AuditEntry]:
    return list(iter_entries(session=session))


def search(
    *, session: Session, flt: AuditFilter, after_seq: int = 0, limit: int = 100
) -> list[AuditEntry]:
    """At most `limit` matching entries after `after_seq` (page on with the last seq)."""
    return LOG.search(lambda: nullcontext(session), flt=flt, after_seq=after_seq, limit=limit)


def search_page(
    *, session: Session, search: EntrySearch, offset: int = 0, limit: int = 50
) -> tuple[list[AuditEntry], int]:
    """One page of matching entries, newest first, and how many match in all."""
    return LOG.newest_first(session, search=search, offset=offset, limit=limit)


def actions(*, session: Session) -> list[str]:
    """The actions the hub's log holds (what an auditor can pick from)."""
    return LOG.actions(session)


def head(*, session: Session) -> tuple[int, str]:
    return LOG.head(session)


def verify_chain(*, session: Session) -> int | None:
    """The first broken sequence number, or None when the chain holds."""
    return first_bad_seq(iter_entries(session=session))


def verify(*, session: Session, identity: HubIdentity) -> AuditVerification:
    """The hub's own chain up to the head it reads first (node checkpoints: per node log).

    Entries appended while it runs are left to the next run, so it verifies a busy hub.
    It only reads: on a session not yet in a transaction, SQLite reads a snapshot without
    taking the write lock, so a long chain's check never holds up the hub's writers.
    """
    if not session.in_transaction():
        read_only(session)
    tip, last_seq = LOG.tip(session)
    return verify_log(
        side="hub",
        owner_id=identity.hub_id,
        entries=iter_entries(session=session, upto=tip[0], lenient=True),
        head=tip,
        last_seq=last_seq,
        checkpoints=[],
        public_jwk=None,
    )


# --- node checkpoints held -----------------------------------------------------------------


def list_checkpoints(*, session: Session, node_id: str | None = None) -> list[CheckpointRead]:
    stmt = select(CheckpointRow).order_by(CheckpointRow.node_id, CheckpointRow.seq)
    if node_id is not None:
        stmt = stmt.where(CheckpointRow.node_id == node_id)
    return [checkpoint_read(r) for r in session.scalars(stmt)]


def checkpoint_read(row: CheckpointRow) -> CheckpointRead:
    return CheckpointRead(
        node_id=row.node_id,
        seq=row.seq,
        hash=row.hash,
        signed_at=datetime.fromisoformat(row.signed_at),
        received_at=datetime.fromisoformat(row.received_at),
        jws=row.jws,
    )


# --- exports -------------------------------------------------------------------------------


def record_export(
    *,
    session: Session,
    actor: str,
    fmt: str,
    flt: AuditFilter,
    search: EntrySearch | None = None,
) -> None:
    """Who took a copy of the log, in what form and filtered how, goes in the log itself."""
    shown = flt.model_dump(mode="json", exclude_none=True)
    if search is not None:
        shown |= {k: v for k, v in _search_fields(search).items() if v}
    append(
        session=session,
        actor=actor,
        action="audit.exported",
        object="audit",
        details={"format": fmt, "filter": shown},
    )
    session.commit()


def export_jsonl(
    *,
    session: Session,
    identity: HubIdentity,
    flt: AuditFilter | None = None,
    search: EntrySearch | None = None,
) -> Iterator[str]:
    """JSON Lines: an AuditExportHeader (with every node checkpoint), then one entry a line.

    `search` (the auditor's page) narrows further; either makes the export incomplete.
    """
    exported_at = datetime.now(UTC)  # before the head is read: the snapshot's moment
    seq, digest = head(session=session)
    header = AuditExportHeader(
        side="hub",
        owner_id=identity.hub_id,
        public_jwk=identity.public_jwk,
        exported_at=exported_at,
        head_seq=seq,
        head_hash=digest,
        complete=(flt is None or flt == AuditFilter())
        and (search is None or search == EntrySearch()),
        checkpoints=tuple(c.jws for c in list_checkpoints(session=session)),
    )
    yield header.model_dump_json() + "\n"
    # Entries appended during the export are after the header's head: not part of it.
    for entry in iter_entries(session=session, flt=flt, upto=seq):
        if search is None or search.matches(entry):
            yield entry.model_dump_json() + "\n"


def export_csv(
    *, session: Session, flt: AuditFilter | None = None, search: EntrySearch | None = None
) -> Iterator[str]:
    """CSV for spreadsheets: one row per entry, `details` as compact JSON."""
    found = iter_entries(session=session, flt=flt)
    return csv_chunks(e for e in found if search is None or search.matches(e))


def _search_fields(search: EntrySearch) -> dict[str, str | None]:
    return {
        "action": search.action,
        "actor_contains": search.actor_contains,
        "object_contains": search.object_contains,
        "object": search.object_is,
        "since": search.since.isoformat() if search.since else None,
        "until": search.until.isoformat() if search.until else None,
    }
