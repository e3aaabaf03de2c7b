"""Storage of a hash-chained audit log, the same on both sides (the chain maths is in
`contracts.v1.audit`): the tables' columns, appends under one lock per transaction, and
reads in batches.

Each side maps the columns onto its own tables (`AuditRow`, `AuditHead` in its
`audit/models.py`) and builds one `AuditLog` over them. Everything takes a session: a side
decides which transaction (the caller's, or one per batch) reads or writes.
"""

import itertools
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import Field
from sqlalchemy import Integer, String, Text, bindparam, func, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from contracts.v1.audit import (
    GENESIS,
    AuditEntry,
    AuditFilter,
    at_text,
    matches,
    next_row,
    stored_entry,
)
from runtime.db import SessionLike, connection_of

BATCH = 5000


class EntryColumns:
    """One entry. Stored exactly as hashed: `at` as fixed-precision UTC ISO text (sortable,
    round-trips on every database), `details` as canonical JSON text."""

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    at: Mapped[str] = mapped_column(String(40), index=True)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(100))
    object: Mapped[str] = mapped_column(String(300))
    details: Mapped[str] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class HeadColumns:
    """Exactly one row (id 1), the chain's tip; locking it serialises appends."""

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(Integer)
    hash: Mapped[str] = mapped_column(String(64))


@dataclass(frozen=True)
class Event:
    """One entry to append: `details` holds ids, codes, column names and costs, never data."""

    actor: str
    action: str
    object: str
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class Tip:
    """The chain head as locked by one transaction (kept in `session.info` for that txn)."""

    transaction: object
    seq: int
    hash: str


_TIP_KEY = "audit_tip"


@dataclass(frozen=True)
class EntrySearch:
    """What an auditor's page searches by: exact action and object, substrings of actor and
    object, and a period [since, until)."""

    action: str | None = None
    actor_contains: str | None = None
    object_contains: str | None = None
    object_is: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def conditions(self, table: type[EntryColumns]) -> list[Any]:
        found: list[Any] = []
        if self.action is not None:
            found.append(table.action == self.action)
        if self.actor_contains:
            found.append(table.actor.contains(self.actor_contains, autoescape=True))
        if self.object_contains:
            found.append(table.object.contains(self.object_contains, autoescape=True))
        if self.object_is is not None:
            found.append(table.object == self.object_is)
        if self.since is not None:
            found.append(table.at >= at_text(self.since))
        if self.until is not None:
            found.append(table.at < at_text(self.until))
        return found

    def matches(self, entry: AuditEntry) -> bool:
        """The same conditions on an entry already read (exports stream the whole log)."""
        return (
            (self.action is None or entry.action == self.action)
            and (not self.actor_contains or self.actor_contains in entry.actor)
            and (not self.object_contains or self.object_contains in entry.object)
            and (self.object_is is None or entry.object == self.object_is)
            and (self.since is None or entry.at >= self.since)
            and (self.until is None or entry.at < self.until)
        )


class AuditLog:
    """Appends to and reads one side's chain, over its entry and head tables.

    `after_append(session, head_seq)` runs after every append, inside its transaction (the
    node signs a checkpoint that falls due there). Appends take the session of a
    `runtime.db.transaction` or the connection of a `core_transaction`.
    """

    def __init__(
        self,
        *,
        entries: type[EntryColumns],
        head: type[HeadColumns],
        after_append: Callable[[SessionLike, int], None] | None = None,
    ) -> None:
        self.entries = entries
        self.head_table = head
        self.after_append = after_append
        # Database address -> (seq, its hash, actions up to it): see `actions`.
        self._actions: dict[str, tuple[int, str, frozenset[str]]] = {}
        # Built once and run through Core: appends sit on the query path, so no ORM unit of
        # work, one multi-row insert and one head update per call.
        self._insert = insert(entries)
        self._lock_head = select(head.seq, head.hash).where(head.id == 1).with_for_update()
        self._read_head = select(head.seq, head.hash).where(head.id == 1)
        self._move_head = (
            update(head)
            .where(head.id == 1)
            .values(seq=bindparam("tip_seq"), hash=bindparam("tip_hash"))
        )
        # The head moved only if it is still the one this process last wrote (`append_many`).
        self._move_head_from = (
            update(head)
            .where(
                head.id == 1,
                head.seq == bindparam("was_seq"),
                head.hash == bindparam("was_hash"),
            )
            .values(seq=bindparam("tip_seq"), hash=bindparam("tip_hash"))
        )
        # Engine -> the head this process last wrote through it: a guess, never trusted (see
        # `append_many`).
        self._last_head: dict[int, tuple[int, str]] = {}
        # The head and the highest stored entry in one statement: one snapshot even where
        # each statement of a transaction sees its own (PostgreSQL's READ COMMITTED).
        self._snapshot = select(
            select(head.seq).where(head.id == 1).scalar_subquery(),
            select(head.hash).where(head.id == 1).scalar_subquery(),
            select(func.max(entries.seq)).scalar_subquery(),
        )

    def append(
        self,
        session: SessionLike,
        *,
        actor: str,
        action: str,
        object: str,
        details: dict[str, Any] | None = None,
    ) -> int:
        """Append one entry in the caller's transaction; returns its sequence number.

        `details` holds ids, codes, column names and costs only, never a data value.
        """
        event = Event(actor=actor, action=action, object=object, details=details or {})
        return self.append_many(session, [event])[-1]

    def append_many(self, session: SessionLike, events: Sequence[Event]) -> list[int]:
        """Append entries in order in the caller's transaction; returns their sequence numbers.

        The head is locked once per transaction, so events that belong to one decision cost
        one round of statements and commit with it. A transaction's first append starts from
        the head this process last wrote to the database and moves the head only if it is
        still that one (a conditional UPDATE, which takes the head's lock as FOR UPDATE
        would): one statement fewer than reading the head first. If another writer moved it
        meanwhile (another process, a rolled-back transaction), nothing was changed and the
        head is read under its lock as before.
        """
        if not events:
            return []
        connection = connection_of(session)
        tip = self._cached_tip(session)
        rows: list[dict[str, Any]] | None = None
        if tip is None:
            guess = self._last_head.get(_database_key(connection))
            if guess is not None:
                rows = _chain_rows(guess[0], guess[1], events)
                moved = connection.execute(
                    self._move_head_from,
                    {
                        "tip_seq": rows[-1]["seq"],
                        "tip_hash": rows[-1]["hash"],
                        "was_seq": guess[0],
                        "was_hash": guess[1],
                    },
                )
                if moved.rowcount == 1:
                    tip = self._keep_tip(session, rows[-1]["seq"], rows[-1]["hash"])
                else:
                    rows = None
        if rows is None:
            if tip is None:
                tip = self.locked_tip(session)
            rows = _chain_rows(tip.seq, tip.hash, events)
            tip.seq, tip.hash = rows[-1]["seq"], rows[-1]["hash"]
            connection.execute(self._move_head, {"tip_seq": tip.seq, "tip_hash": tip.hash})
        assert tip is not None
        connection.execute(self._insert, rows)
        self._last_head[_database_key(connection)] = (tip.seq, tip.hash)
        if self.after_append is not None:
            self.after_append(session, tip.seq)
        return [row["seq"] for row in rows]

    def _cached_tip(self, session: SessionLike) -> Tip | None:
        """The head this transaction (innermost) already locked, if it did."""
        transaction = session.get_nested_transaction() or session.get_transaction()
        cached = session.info.get(_TIP_KEY)
        if isinstance(cached, Tip) and cached.transaction is transaction:
            return cached
        return None

    def _keep_tip(self, session: SessionLike, seq: int, hash: str) -> Tip:
        transaction = session.get_nested_transaction() or session.get_transaction()
        tip = Tip(transaction=transaction, seq=seq, hash=hash)
        session.info[_TIP_KEY] = tip
        return tip

    def locked_tip(self, session: SessionLike) -> Tip:
        """The head, locked for the rest of the caller's transaction.

        Locked once per transaction (FOR UPDATE on PostgreSQL; BEGIN IMMEDIATE already holds
        SQLite's write lock): later appends in it continue from the cache. Keyed by the
        innermost transaction, so a rolled-back savepoint never leaves it stale.
        """
        cached = self._cached_tip(session)
        if cached is not None:
            return cached
        connection = connection_of(session)
        found = connection.execute(self._lock_head).first()
        if found is None:
            try:
                with session.begin_nested():
                    connection_of(session).execute(
                        insert(self.head_table).values(id=1, seq=0, hash=GENESIS)
                    )
            except IntegrityError:
                pass  # another writer created it first; lock theirs
            found = connection.execute(self._lock_head).one()
        return self._keep_tip(session, found[0], found[1])

    def head(self, session: Session) -> tuple[int, str]:
        # Core, not session.get: appends move the head through Core, so an ORM copy could be
        # stale.
        row = session.execute(self._read_head).first()
        return (row[0], row[1]) if row is not None else (0, GENESIS)

    def tip(self, session: Session) -> tuple[tuple[int, str], int]:
        """The head and the highest stored entry, read in one statement (one snapshot)."""
        found = session.execute(self._snapshot).one()
        head = (found[0], found[1]) if found[0] is not None else (0, GENESIS)
        return head, found[2] or 0

    def search(
        self,
        read: Callable[[], AbstractContextManager[Session]],
        *,
        flt: AuditFilter,
        after_seq: int = 0,
        limit: int = 100,
    ) -> list[AuditEntry]:
        """At most `limit` matching entries after `after_seq` (page on with the last seq)."""
        found = (e for e in self.iter_entries(read, flt=flt) if e.seq > after_seq)
        return list(itertools.islice(found, limit))

    def iter_entries(
        self,
        read: Callable[[], AbstractContextManager[Session]],
        *,
        flt: AuditFilter | None = None,
        upto: int | None = None,
        lenient: bool = False,
    ) -> Iterator[AuditEntry]:
        """Entries in sequence order, in batches, so a long chain streams in constant memory.

        Each batch is read in the session `read()` gives (the caller's own, or a transaction
        of its own). `upto` stops at a snapshot's head: entries never change once written,
        so those up to it read the same in later statements, whatever is appended meanwhile.
        """
        table = self.entries
        after = 0
        while True:
            stmt = select(table).where(table.seq > after)
            if upto is not None:
                stmt = stmt.where(table.seq <= upto)
            if flt is not None and flt.since is not None:
                stmt = stmt.where(table.at >= at_text(flt.since))
            if flt is not None and flt.until is not None:
                stmt = stmt.where(table.at < at_text(flt.until))
            if flt is not None and flt.analyst is not None:
                stmt = stmt.where(table.actor == f"user:{flt.analyst}")
            if flt is not None and flt.action is not None:
                stmt = stmt.where(table.action == flt.action)
            with read() as session:
                rows = session.scalars(stmt.order_by(table.seq).limit(BATCH)).all()
                batch = [self.entry(r, lenient=lenient) for r in rows]
            if not batch:
                return
            after = batch[-1].seq
            yield from (e for e in batch if flt is None or matches(e, flt))

    def newest_first(
        self,
        session: Session,
        *,
        search: EntrySearch,
        offset: int = 0,
        limit: int = 50,
    ) -> tuple[list[AuditEntry], int]:
        """One page of matching entries, newest first, and how many match in all.

        Every condition is SQL (a page of a million-entry log reads one page of rows);
        `actor` and `object` match as substrings, wildcards taken literally.
        """
        table = self.entries
        conditions = search.conditions(table)
        total = session.scalar(select(func.count()).select_from(table).where(*conditions)) or 0
        rows = session.scalars(
            select(table).where(*conditions).order_by(table.seq.desc()).offset(offset).limit(limit)
        ).all()
        return [self.entry(r, lenient=True) for r in rows], total

    def actions(self, session: Session) -> list[str]:
        """Every action the log holds, in alphabetical order (an auditor's pick-list).

        Entries never change once written, so the actions seen up to an entry are kept (per
        database) and only later entries are read: a million-entry log is scanned once per
        process, not on every page. If the entry the list was taken up to is no longer the
        same (another database at the same address), the whole log is read again.
        """
        table = self.entries
        key = str(session.connection().engine.url)
        start, known = 0, set[str]()
        cached = self._actions.get(key)
        if cached is not None:
            seq, digest, names = cached
            if session.scalar(select(table.hash).where(table.seq == seq)) == digest:
                start, known = seq, set(names)
        found = session.execute(
            select(table.action, func.max(table.seq))
            .where(table.seq > start)
            .group_by(table.action)
        ).all()
        known.update(action for action, _ in found)
        top = max((seq for _, seq in found), default=start)
        if top > start:
            tip = session.scalar(select(table.hash).where(table.seq == top))
            if tip is not None:
                self._actions[key] = (top, tip, frozenset(known))
        return sorted(known)

    @staticmethod
    def entry(row: EntryColumns, *, lenient: bool = False) -> AuditEntry:
        """The entry a stored row holds (`lenient`: one that fails to parse still comes back,
        marked, so a verifier can name it)."""
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


def _chain_rows(seq: int, hash: str, events: Sequence[Event]) -> list[dict[str, Any]]:
    """The stored rows of `events`, chained on from the head (`seq`, `hash`): plain column
    values, hashed as `next_entry` hashes (no model per entry)."""
    rows = []
    for event in events:
        row = next_row(
            prev_seq=seq,
            prev_hash=hash,
            at=datetime.now(UTC),
            actor=event.actor,
            action=event.action,
            object=event.object,
            details=event.details,
        )
        rows.append(row)
        seq, hash = row["seq"], row["hash"]
    return rows


def _database_key(connection: Connection) -> int:
    # The engine's identity (rendering its URL costs more than the statement saved): a
    # reused id only makes a guess wrong, which the conditional UPDATE finds.
    return id(connection.engine)


# --- the query parameters of both sides' audit routes ----------------------------------------


class AuditQuery(AuditFilter):
    """Search parameters: the filter, then paging (`after_seq`, `limit`)."""

    after_seq: int = Field(default=0, ge=0)
    limit: int = Field(default=100, ge=1, le=1000)

    def filter(self) -> AuditFilter:
        return AuditFilter.model_validate(self.model_dump(exclude={"after_seq", "limit"}))


class ExportQuery(AuditFilter):
    format: Literal["jsonl", "csv"] = "jsonl"

    def filter(self) -> AuditFilter:
        return AuditFilter.model_validate(self.model_dump(exclude={"format"}))
