"""Append to, search, verify, checkpoint and export the node's hash-chained audit log."""

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
from joserfc.jwk import OKPKey
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from contracts import signing
from contracts.v1 import Signed
from contracts.v1.audit import (
    AuditCheckpoint,
    AuditEntry,
    AuditExportHeader,
    AuditFilter,
    AuditVerification,
    BudgetState,
    PastKey,
    at_text,
    first_bad_seq,
    verify_log,
)
from node.audit.exceptions import CheckpointNotPublished
from node.audit.models import AuditHead, AuditRow, CheckpointRow
from node.db import SessionLike, transaction
from node.home import NodeIdentity, load_identity, load_key
from node.ledger.models import BudgetRow
from node.settings import NodeSettings
from runtime.audit_log import AuditLog, Event, Tip

log = logging.getLogger(__name__)
PUBLISH_TIMEOUT_SECONDS = 10.0

__all__ = ["LOG", "Event", "append", "append_many"]

# The one place every path appends through; `checkpoints.enable` hooks the automatic
# checkpoints in (a checkpoint due after an append is signed when it commits).
LOG = AuditLog(entries=AuditRow, head=AuditHead)
append = LOG.append
append_many = LOG.append_many


def iter_entries(
    *,
    database_url: str,
    flt: AuditFilter | None = None,
    upto: int | None = None,
    lenient: bool = False,
) -> Iterator[AuditEntry]:
    """Entries in sequence order, each batch in a transaction of its own, so a long chain
    streams in constant memory and never holds the node's write lock for long."""
    return LOG.iter_entries(lambda: transaction(database_url), flt=flt, upto=upto, lenient=lenient)


def entries(*, database_url: str) -> list[AuditEntry]:
    return list(iter_entries(database_url=database_url))


def search(
    *, database_url: str, flt: AuditFilter, after_seq: int = 0, limit: int = 100
) -> list[AuditEntry]:
    """At most `limit` matching entries after `after_seq` (page on with the last seq)."""
    return LOG.search(lambda: transaction(database_url), flt=flt, after_seq=after_seq, limit=limit)


def head(*, database_url: str) -> tuple[int, str]:
    with transaction(database_url) as session:
        return LOG.head(session)


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
        tip, last_seq = LOG.tip(session)
        rows = session.execute(select(BudgetRow).order_by(BudgetRow.agreement_id)).scalars()
        budgets = [
            BudgetState(agreement_id=r.agreement_id, rho_spent=r.rho_spent, queries=r.queries)
            for r in rows
        ]
        return Snapshot(
            as_of=as_of,
            head=tip,
            last_seq=last_seq,
            checkpoints=_checkpoint_tokens(session),
            budgets=budgets,
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

    Any automatic checkpoint due but not yet signed up to the head is signed with it (see
    `checkpoint_if_due`), so signing the head never leaves a due point behind. Idempotent:
    when nothing but checkpoints' own entries came after the last checkpoint, that
    checkpoint is returned rather than a new one at a later sequence number.
    """
    identity = load_identity(home)
    key = load_key(home)
    with transaction(settings.db_url) as session:
        tip = LOG.locked_tip(session)
        latest = _latest_checkpoint(session)
        if latest is not None and _covers_head(session, latest.seq, tip.seq):
            return signing.verify_model(
                latest.jws, signing.load_public_key(identity.public_jwk), AuditCheckpoint
            )
        last = latest.seq if latest is not None else 0
        due = _due_positions(
            session, after=last, upto=tip.seq, every=settings.audit_checkpoint_every
        )
        positions = sorted({*due, tip.seq})
        return _sign_positions(session, identity=identity, key=key, tip=tip, positions=positions)[
            -1
        ]


def checkpoint_if_due(*, home: Path, settings: NodeSettings) -> tuple[list[AuditCheckpoint], int]:
    """Sign every due point up to the head that has no checkpoint yet.

    The due points are the sequence numbers that are multiples of `audit_checkpoint_every`,
    whichever transaction's append reached them; a checkpoint's own entry never falls due
    (the next checkpoint covers it; with every=1 it would sign itself for ever). Decided
    under the chain's lock, so when several appends make points due while another
    transaction holds it, whoever takes the lock next signs each of them, with the hash
    the log holds at that point, and concurrent triggers find them signed: each due point
    is signed once. Returns the checkpoints made (oldest first) and the head they were
    decided at (every due point up to it is signed).
    """
    identity = load_identity(home)
    key = load_key(home)
    with transaction(settings.db_url) as session:
        tip = LOG.locked_tip(session)
        due = _due_positions(
            session,
            after=latest_checkpoint_seq(session),
            upto=tip.seq,
            every=settings.audit_checkpoint_every,
        )
        made = _sign_positions(session, identity=identity, key=key, tip=tip, positions=due)
        return made, tip.seq


def next_due_after(seq: int, every: int) -> int:
    """The first due point after sequence number `seq` (the next multiple of `every`)."""
    return (seq // every + 1) * every


def latest_checkpoint_seq(session: SessionLike) -> int:
    """The newest checkpoint's sequence number (0: none yet), in the caller's transaction."""
    latest = session.execute(select(func.max(CheckpointRow.seq))).scalar_one()
    return int(latest or 0)


def _latest_checkpoint(session: Session) -> CheckpointRow | None:
    return session.execute(
        select(CheckpointRow).order_by(CheckpointRow.seq.desc()).limit(1)
    ).scalar_one_or_none()


def _covers_head(session: Session, checkpoint_seq: int, tip_seq: int) -> bool:
    """Whether nothing but checkpoints' own entries came after the checkpoint."""
    if tip_seq < checkpoint_seq:
        return False
    others = session.execute(
        select(func.count())
        .select_from(AuditRow)
        .where(
            AuditRow.seq > checkpoint_seq,
            AuditRow.seq <= tip_seq,
            AuditRow.action != CHECKPOINT_SIGNED,
        )
    ).scalar_one()
    return others == 0


def _due_positions(session: Session, *, after: int, upto: int, every: int) -> list[int]:
    """Due points in (after, upto]: multiples of `every` that are not a checkpoint's entry."""
    if every <= 0 or upto < every:
        return []
    multiples = range(next_due_after(after, every), upto + 1, every)
    if not multiples:
        return []
    own = set(
        session.execute(
            select(AuditRow.seq).where(
                AuditRow.seq >= multiples[0],
                AuditRow.seq <= upto,
                AuditRow.action == CHECKPOINT_SIGNED,
            )
        ).scalars()
    )
    return [seq for seq in multiples if seq not in own]


def _sign_positions(
    session: Session, *, identity: NodeIdentity, key: OKPKey, tip: Tip, positions: list[int]
) -> list[AuditCheckpoint]:
    """Sign the chain at each position up to the locked `tip` (ascending, none signed yet)
    with the hash the log holds there; each checkpoint also gets an entry, appended after
    them all."""
    if not positions:
        return []
    found = session.execute(select(AuditRow).where(AuditRow.seq.in_(positions))).scalars()
    hashes = {row.seq: row.hash for row in found}
    hashes[tip.seq] = tip.hash  # also the empty log's (seq 0, genesis)
    now = datetime.now(UTC)
    made = []
    for seq in positions:
        checkpoint = AuditCheckpoint(
            node_id=identity.node_id, seq=seq, hash=hashes[seq], signed_at=now
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
        made.append(checkpoint)
    append_many(
        session,
        [
            Event(
                actor="node",
                action=CHECKPOINT_SIGNED,
                object=f"checkpoint:{c.seq}",
                details={"seq": c.seq, "hash": c.hash},
            )
            for c in made
        ],
    )
    return made


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
