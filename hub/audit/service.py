"""Append to and read the hub's audit chain (entries as `contracts.v1.audit.AuditEntry`)."""

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from contracts.v1.audit import GENESIS, AuditEntry, entry_hash, first_bad_seq
from hub.audit.models import AuditHead, AuditRow


def append(
    *, session: Session, actor: str, action: str, object: str, details: dict[str, Any] | None = None
) -> AuditEntry:
    """Add one entry in the caller's transaction; `details` holds ids, codes and costs only."""
    head = _locked_head(session)
    at = datetime.now(UTC)
    body = details or {}
    seq = head.seq + 1
    digest = entry_hash(
        seq=seq, at=at, actor=actor, action=action, object=object, details=body, prev_hash=head.hash
    )
    session.add(
        AuditRow(
            seq=seq,
            at=at,
            actor=actor,
            action=action,
            object=object,
            details=body,
            prev_hash=head.hash,
            hash=digest,
        )
    )
    entry = AuditEntry(
        seq=seq,
        at=at,
        actor=actor,
        action=action,
        object=object,
        details=body,
        prev_hash=head.hash,
        hash=digest,
    )
    head.seq = seq
    head.hash = digest
    session.flush()
    return entry


def entries(*, session: Session) -> list[AuditEntry]:
    rows = session.scalars(select(AuditRow).order_by(AuditRow.seq))
    return [
        AuditEntry(
            seq=r.seq,
            at=_utc(r.at),
            actor=r.actor,
            action=r.action,
            object=r.object,
            details=r.details,
            prev_hash=r.prev_hash,
            hash=r.hash,
        )
        for r in rows
    ]


def verify_chain(*, session: Session) -> int | None:
    """The first broken sequence number, or None when the chain holds."""
    return first_bad_seq(entries(session=session))


def _locked_head(session: Session) -> AuditHead:
    head = session.scalars(select(AuditHead).where(AuditHead.id == 1).with_for_update()).first()
    if head is not None:
        return head
    try:
        with session.begin_nested():
            session.add(AuditHead(id=1, seq=0, hash=GENESIS))
    except IntegrityError:
        pass  # another writer created it first; lock theirs
    return session.scalars(select(AuditHead).where(AuditHead.id == 1).with_for_update()).one()


def _utc(value: datetime) -> datetime:
    # SQLite hands timestamps back naive (they were written in UTC), PostgreSQL in the
    # session's zone: the hash covers the UTC isoformat, so normalise both.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
