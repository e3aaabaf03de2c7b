"""Append to and verify the node's hash-chained audit log."""

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from contracts.v1.audit import GENESIS, AuditEntry, entry_hash, first_bad_seq
from node.audit.models import AuditHead, AuditRow
from node.db import engine_for, transaction


def append(
    session: Session, *, actor: str, action: str, object: str, details: dict[str, Any]
) -> int:
    """Append one entry inside the caller's transaction; returns its sequence number.

    `details` holds ids, codes, column names and costs only, never a data value.
    """
    head = _locked_head(session)
    at = datetime.now(UTC)
    seq = head.seq + 1
    digest = entry_hash(
        seq=seq,
        at=at,
        actor=actor,
        action=action,
        object=object,
        details=details,
        prev_hash=head.hash,
    )
    session.add(
        AuditRow(
            seq=seq,
            at=at.isoformat(),
            actor=actor,
            action=action,
            object=object,
            details=json.dumps(details, sort_keys=True),
            prev_hash=head.hash,
            hash=digest,
        )
    )
    head.seq, head.hash = seq, digest
    session.flush()
    return seq


def _locked_head(session: Session) -> AuditHead:
    head = session.execute(
        select(AuditHead).where(AuditHead.id == 1).with_for_update()
    ).scalar_one_or_none()
    if head is not None:
        return head
    try:
        with session.begin_nested():
            session.add(AuditHead(id=1, seq=0, hash=GENESIS))
    except IntegrityError:
        pass  # another writer created it first; lock theirs
    return session.execute(
        select(AuditHead).where(AuditHead.id == 1).with_for_update()
    ).scalar_one()


def entries(*, database_url: str) -> list[AuditEntry]:
    with transaction(database_url) as session:
        rows = session.execute(select(AuditRow).order_by(AuditRow.seq)).scalars().all()
        return [
            AuditEntry(
                seq=row.seq,
                at=datetime.fromisoformat(row.at),
                actor=row.actor,
                action=row.action,
                object=row.object,
                details=json.loads(row.details),
                prev_hash=row.prev_hash,
                hash=row.hash,
            )
            for row in rows
        ]


def verify_chain(*, database_url: str) -> int | None:
    """The first sequence number whose link or hash is wrong, or None if the chain holds."""
    engine_for(database_url)
    return first_bad_seq(entries(database_url=database_url))
