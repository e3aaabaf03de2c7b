"""Bind each query id to one mode: a plain release (`per_node`) or secure aggregation.

The hub never sends one query id in both modes (a secure query that falls back to a plain
release asks under a derived id), so a node that sees it is being replayed or misled: it
refuses, and nothing is charged. A plain id is recorded by its release intent in the ledger
(`releases`, keyed by query id); a secure id by a row in `secure_queries`, written when a
secure phase accepts it.

Race-free on both databases: both checks run under the agreement's budget row lock, the
lock `ledger.reserve` takes (SQLite's BEGIN IMMEDIATE serialises anyway). A plain request
checks `secure_queries` after reserving; a secure phase locks first, then checks the
ledger. Whichever commits second sees the other's row and is refused, rolled back whole.
"""

from datetime import datetime
from uuid import UUID

from sqlalchemy import bindparam, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from node.db import SessionLike, connection_of
from node.ledger.models import BudgetRow, ReleaseRow
from node.queries.exceptions import QueryModeConflict
from node.queries.models import SecureQueryRow

# Built once, run on the session's connection: every plain query runs it.
_SECURE_ID = select(SecureQueryRow.query_id).where(SecureQueryRow.query_id == bindparam("query"))


def check_plain(session: SessionLike, *, query_id: UUID) -> None:
    """After `ledger.reserve` (budget row locked): refuse an id used for secure aggregation."""
    if connection_of(session).execute(_SECURE_ID, {"query": str(query_id)}).first() is not None:
        raise _conflict()


def bind_secure(session: Session, *, query_id: UUID, agreement_id: str, now: datetime) -> None:
    """Record `query_id` as secure, or refuse it if a plain release intent holds it."""
    qid = str(query_id)
    session.execute(
        select(BudgetRow.agreement_id)
        .where(BudgetRow.agreement_id == agreement_id)
        .with_for_update()
    )
    if session.get(ReleaseRow, qid) is not None:
        raise _conflict()
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    session.execute(
        insert(SecureQueryRow)
        .values(query_id=qid, first_seen=now.isoformat())
        .on_conflict_do_nothing(index_elements=["query_id"])
    )


def _conflict() -> QueryModeConflict:
    return QueryModeConflict(
        "this query id was used for the other kind of request (plain release or secure "
        "aggregation); the hub never sends one id as both"
    )
