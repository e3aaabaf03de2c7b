"""Append to, search, verify, checkpoint and export the node's hash-chained audit log."""

import json
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from joserfc.jwk import OKPKey
from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from contracts import signing
from contracts.v1 import Signed
from contracts.v1.audit import (
    GENESIS,
    AuditCheckpoint,
    AuditEntry,
    AuditExportHeader,
    AuditFilter,
    AuditVerification,
    BudgetState,
    PastKey,
    at_text,
    first_bad_seq,
    matches,
    next_entry,
    stored_entry,
    verify_log,
)
from node.audit import checkpoints as automatic
from node.audit.exceptions import CheckpointNotPublished
from node.audit.models import AuditHead, AuditRow, CheckpointRow
from node.db import transaction
from node.home import NodeIdentity, load_identity, load_key
from node.ledger.models import BudgetRow
from node.settings import NodeSettings

log = logging.getLogger(__name__)
BATCH = 5000
PUBLISH_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class Event:
    """One entry to append: `details` holds ids, codes, column names and costs, never data."""

    actor: str
    action: str
    object: str
    details: dict[str, Any]


@dataclass
class _Tip:
    """The chain head as locked by one transaction (kept in `session.info` for that txn)."""

    transaction: object
    seq: int
    hash: str


# Built once: appends sit on the query path, so they go through Core with cached statements
# (no ORM unit of work, no identity map), one multi-row insert and one head update per call.
_INSERT = insert(AuditRow)
_LOCK_HEAD = select(AuditHead.seq, AuditHead.hash).where(AuditHead.id == 1).with_for_update()
_MOVE_HEAD = (
    update(AuditHead)
    .where(AuditHead.id == 1)
    .values(seq=bindparam("tip_seq"), hash=bindparam("tip_hash"))
)
_TIP_KEY = "audit_tip"


def append(
    session: Session, *, actor: str, action: str, object: str, details: dict[str, Any]
) -> int:
    """Append one entry inside the caller's transaction; returns its sequence number.

    `details` holds ids, codes, column names and costs only, never a data value.
    """
    return append_many(
        session, [Event(actor=actor, action=action, object=object, details=details)]
    )[-1]


def append_many(session: Session, events: Sequence[Event]) -> list[int]:
    """Append entries in order inside the caller's transaction; returns their sequence numbers.

    The head is locked once per transaction, so events that belong to one decision (request
    received, decision, budget charged) cost one round of statements and commit with it.
    """
    if not events:
        return []
    tip = _locked_tip(session)
    rows = []
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
        rows.append(_row_values(entry))
        tip.seq, tip.hash = entry.seq, entry.hash
    connection = session.connection()
    connection.execute(_INSERT, rows)
    connection.execute(_MOVE_HEAD, {"tip_seq": tip.seq, "tip_hash": tip.hash})
    # The one place every path appends through: a checkpoint due now is signed on commit.
    automatic.note_append(session, head=tip.seq)
    return [row["seq"] for row in rows]


def _row_values(entry: AuditEntry) -> dict[str, Any]:
    return {
        "seq": entry.seq,
        "at": at_text(entry.at),
        "actor": entry.actor,
        "action": entry.action,
        "object": entry.object,
        "details": json.dumps(entry.details, sort_keys=True, separators=(",", ":")),
        "prev_hash": entry.prev_hash,
        "hash": entry.hash,
    }


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


def _locked_tip(session: Session) -> _Tip:
    # Locked once per transaction (FOR UPDATE on PostgreSQL; BEGIN IMMEDIATE already holds
    # SQLite's write lock): later appends in the same transaction continue from the cache.
    # Keyed by the innermost transaction, so a rolled-back savepoint never leaves it stale.
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


def iter_entries(
    *,
    database_url: str,
    flt: AuditFilter | None = None,
    upto: int | None = None,
    lenient: bool = False,
) -> Iterator[AuditEntry]:
    """Entries in sequence order, read in batches so a long chain streams in constant memory.

    `upto` stops at a snapshot's head: entries are never changed once written, so those up
    to it read the same in later transactions, whatever is appended meanwhile.
    """
    after = 0
    while True:
        with transaction(database_url) as session:
            stmt = select(AuditRow).where(AuditRow.seq > after)
            if upto is not None:
                stmt = stmt.where(AuditRow.seq <= upto)
            if flt is not None and flt.since is not None:
                stmt = stmt.where(AuditRow.at >= at_text(flt.since))
            if flt is not None and flt.until is not None:
                stmt = stmt.where(AuditRow.at < at_text(flt.until))
            rows = session.execute(stmt.order_by(AuditRow.seq).limit(BATCH)).scalars().all()
            batch = [_from_row(r, lenient=lenient) for r in rows]
        if not batch:
            return
        after = batch[-1].seq
        for entry in batch:
            if flt is None or matches(entry, flt):
                yield entry


def entries(*, database_url: str) -> list[AuditEntry]:
    return list(iter_entries(database_url=database_url))


def search(
    *, database_url: str, flt: AuditFilter, after_seq: int = 0, limit: int = 100
) -> list[AuditEntry]:
    """At most `limit` matching entries after `after_seq` (page on with the last seq)."""
    found: list[AuditEntry] = []
    for entry in iter_entries(database_url=database_url, flt=flt):
        if entry.seq > after_seq:
            found.append(entry)
            if len(found) >= limit:
                break
    return found


def head(*, database_url: str) -> tuple[int, str]:
    with transaction(database_url) as session:
        row = session.get(AuditHead, 1)
        return (row.seq, row.hash) if row is not None else (0, GENESIS)


def verify_chain(*, database_url: str) -> int | None:
    """The first sequence number whose link or hash is wrong, or None if the chain holds."""
    return first_bad_seq(iter_entries(database_url=database_url))


def checkpoints(*, database_url: str) -> list[str]:
    with transaction(database_url) as session:
        return _checkpoint_tokens(session)


def _checkpoint_tokens(session: Session) -> list[str]:
    return list(session.execute(select(CheckpointRow.jws).order_by(CheckpointRow.seq)).scalars())


@dataclass(frozen=True)
class Snapshot:
    """One consistent read of the log's state; verify and export stop at its head.

    `last_seq` is the highest entry stored at that moment (a committed log has its head
    there), `as_of` the node's clock just before the read.
    """

    as_of: datetime
    head: tuple[int, str]
    last_seq: int
    checkpoints: list[str]
    budgets: list[BudgetState]


def snapshot(*, database_url: str) -> Snapshot:
    """Head, last entry, checkpoints and budgets as of one moment, while appends go on.

    SQLite: the transaction holds the write lock. PostgreSQL: one REPEATABLE READ snapshot,
    so the budgets are exactly those charged by the entries up to the head.
    """
    as_of = datetime.now(UTC)
    with transaction(database_url) as session:
        if session.get_bind().dialect.name == "postgresql":
            session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
        tip = session.execute(_SNAPSHOT).one()
        rows = session.execute(select(BudgetRow).order_by(BudgetRow.agreement_id)).scalars()
        budgets = [
            BudgetState(agreement_id=r.agreement_id, rho_spent=r.rho_spent, queries=r.queries)
            for r in rows
        ]
        return Snapshot(
            as_of=as_of,
            head=(tip[0], tip[1]) if tip[0] is not None else (0, GENESIS),
            last_seq=tip[2] or 0,
            checkpoints=_checkpoint_tokens(session),
            budgets=budgets,
        )


# The head and the highest stored entry in one statement: one snapshot even where each
# statement of a transaction sees its own (PostgreSQL's READ COMMITTED).
_SNAPSHOT = select(
    select(AuditHead.seq).where(AuditHead.id == 1).scalar_subquery(),
    select(AuditHead.hash).where(AuditHead.id == 1).scalar_subquery(),
    select(func.max(AuditRow.seq)).scalar_subquery(),
)


def verify(
    *, home: Path, settings: NodeSettings, hub_checkpoints: list[str] | None = None
) -> AuditVerification:
    """Chain, head, this node's own checkpoints and any the hub holds (e.g. from its export).

    Verifies the snapshot it reads first, so a node answering queries meanwhile verifies
    (cron); everything appended after that snapshot is left to the next run.
    """
    identity = load_identity(home)
    url = settings.db_url
    snap = snapshot(database_url=url)
    return verify_log(
        side="node",
        owner_id=identity.node_id,
        entries=iter_entries(database_url=url, upto=snap.head[0], lenient=True),
        head=snap.head,
        last_seq=snap.last_seq,
        as_of=snap.as_of,
        checkpoints=snap.checkpoints + list(hub_checkpoints or []),
        public_jwk=identity.public_jwk,
        previous_keys=[
            PastKey(public_jwk=k.public_jwk, retired_at=k.retired_at)
            for k in identity.previous_keys
        ],
    )


def budgets(*, database_url: str) -> list[BudgetState]:
    return snapshot(database_url=database_url).budgets


def export_lines(
    *, home: Path, settings: NodeSettings, flt: AuditFilter | None = None
) -> Iterator[str]:
    """JSON Lines: an AuditExportHeader, then one AuditEntry per line, up to its head.

    Header and entries are one snapshot: the budgets are those the exported charges add
    up to, and the checkpoints none beyond the head (a busy node exports consistently).
    """
    identity = load_identity(home)
    url = settings.db_url
    snap = snapshot(database_url=url)
    header = AuditExportHeader(
        side="node",
        owner_id=identity.node_id,
        public_jwk=identity.public_jwk,
        exported_at=snap.as_of,
        head_seq=snap.head[0],
        head_hash=snap.head[1],
        complete=flt is None or flt == AuditFilter(),
        budgets=tuple(snap.budgets),
        checkpoints=tuple(snap.checkpoints),
    )
    yield header.model_dump_json()
    for entry in iter_entries(database_url=url, flt=flt, upto=snap.head[0]):
        yield entry.model_dump_json()


def record_export(*, database_url: str, actor: str, fmt: str, flt: AuditFilter) -> None:
    """Who took a copy of the log, in what form and filtered how, goes in the log itself."""
    with transaction(database_url) as session:
        append(
            session,
            actor=actor,
            action="audit_exported",
            object="audit",
            details={"format": fmt, "filter": flt.model_dump(mode="json", exclude_none=True)},
        )


CHECKPOINT_SIGNED = "checkpoint_signed"


def make_checkpoint(*, home: Path, settings: NodeSettings) -> AuditCheckpoint:
    """Sign the current chain head with the node's key and keep it, pending publication.

    Idempotent: when nothing but the last checkpoint's own entry came after it, that
    checkpoint is returned rather than a new one at the next sequence number.
    """
    identity = load_identity(home)
    key = load_key(home)
    with transaction(settings.db_url) as session:
        tip = _locked_tip(session)
        latest = _latest_checkpoint(session)
        if latest is not None and _covers_head(session, latest.seq, tip.seq):
            return signing.verify_model(
                latest.jws, signing.load_public_key(identity.public_jwk), AuditCheckpoint
            )
        return _sign_head(session, identity=identity, key=key, tip=tip)


def checkpoint_if_due(*, home: Path, settings: NodeSettings) -> tuple[AuditCheckpoint | None, int]:
    """Sign the head if `audit_checkpoint_every` entries came after the last checkpoint.

    Decided under the chain's lock, so concurrent triggers sign once: the others find the
    new checkpoint and return (None, its seq). Returns the checkpoint made (or None) and the
    sequence number of the newest checkpoint.
    """
    every = settings.audit_checkpoint_every
    identity = load_identity(home)
    key = load_key(home)
    with transaction(settings.db_url) as session:
        tip = _locked_tip(session)
        latest = _latest_checkpoint(session)
        last = latest.seq if latest is not None else 0
        # More than the checkpoint's own entry must have come after it (every=1 included).
        if tip.seq - last < max(every, 1) or (latest is not None and tip.seq <= last + 1):
            return None, last
        return _sign_head(session, identity=identity, key=key, tip=tip), tip.seq


def latest_checkpoint_seq(session: Session) -> int:
    """The newest checkpoint's sequence number (0: none yet), in the caller's transaction."""
    latest = session.execute(select(func.max(CheckpointRow.seq))).scalar_one()
    return int(latest or 0)


def _latest_checkpoint(session: Session) -> CheckpointRow | None:
    return session.execute(
        select(CheckpointRow).order_by(CheckpointRow.seq.desc()).limit(1)
    ).scalar_one_or_none()


def _covers_head(session: Session, checkpoint_seq: int, tip_seq: int) -> bool:
    if tip_seq == checkpoint_seq:
        return True
    if tip_seq != checkpoint_seq + 1:
        return False
    after = session.get(AuditRow, tip_seq)
    return (
        after is not None
        and after.action == CHECKPOINT_SIGNED
        and after.object == f"checkpoint:{checkpoint_seq}"
    )


def _sign_head(
    session: Session, *, identity: NodeIdentity, key: OKPKey, tip: _Tip
) -> AuditCheckpoint:
    checkpoint = AuditCheckpoint(
        node_id=identity.node_id, seq=tip.seq, hash=tip.hash, signed_at=datetime.now(UTC)
    )
    session.add(
        CheckpointRow(
            seq=checkpoint.seq,
            hash=checkpoint.hash,
            jws=signing.sign(checkpoint, key),
            signed_at=at_text(checkpoint.signed_at),
            published_at=None,
        )
    )
    append(
        session,
        actor="node",
        action=CHECKPOINT_SIGNED,
        object=f"checkpoint:{checkpoint.seq}",
        details={"seq": checkpoint.seq, "hash": checkpoint.hash},
    )
    return checkpoint


def publish_pending(
    *, home: Path, settings: NodeSettings, transport: httpx.BaseTransport | None = None
) -> int:
    """Send every unpublished checkpoint to the pinned hub URL; returns how many it accepted."""
    identity = load_identity(home)
    if identity.hub_url is None:
        raise CheckpointNotPublished(
            "no hub URL is pinned (sauti node pin-hub --url); checkpoints stay pending"
        )
    with transaction(settings.db_url) as session:
        pending = session.execute(
            select(CheckpointRow.seq, CheckpointRow.jws)
            .where(CheckpointRow.published_at.is_(None))
            .order_by(CheckpointRow.seq)
        ).all()
    sent = 0
    endpoint = f"{identity.hub_url}/v1/nodes/{identity.node_id}/audit/checkpoints"
    with httpx.Client(transport=transport, timeout=PUBLISH_TIMEOUT_SECONDS) as client:
        for seq, jws in pending:
            try:
                response = client.post(endpoint, json=Signed(jws=jws).model_dump())
            except httpx.HTTPError as exc:
                raise CheckpointNotPublished("the hub could not be reached") from exc
            if response.status_code not in (200, 201):
                code = _error_code(response)
                raise CheckpointNotPublished(f"the hub refused checkpoint {seq} ({code})")
            with transaction(settings.db_url) as session:
                row = session.get(CheckpointRow, seq)
                if row is not None:
                    row.published_at = at_text(datetime.now(UTC))
            sent += 1
    return sent


def _error_code(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return f"http_{response.status_code}"
