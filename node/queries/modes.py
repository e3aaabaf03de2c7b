"""Bind each query id to one mode: a plain release (`per_node`) or secure aggregation.

The hub never sends one query id in both modes (a secure query that falls back to a plain
release asks under a derived id), so a node that sees it is being replayed or misled: it
refuses, and nothing is charged. The binding is made in the transaction that accepts the
request (an insert that does nothing when the row exists, then a read), so two requests
racing under one id in different modes cannot both pass, on SQLite or PostgreSQL.
"""

from datetime import datetime
from typing import Literal
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from node.ledger.models import ReleaseRow
from node.queries.exceptions import QueryModeConflict
from node.queries.models import QueryModeRow

Mode = Literal["per_node", "secure"]


def bind(session: Session, *, query_id: UUID, mode: Mode, now: datetime) -> None:
    """Record `mode` for `query_id`, or raise QueryModeConflict if it was used in the other."""
    qid = str(query_id)
    if mode == "secure" and session.get(ReleaseRow, qid) is not None:
        # A plain release stored under this id before modes were recorded.
        raise _conflict()
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    session.execute(
        insert(QueryModeRow)
        .values(query_id=qid, mode=mode, first_seen=now.isoformat())
        .on_conflict_do_nothing(index_elements=["query_id"])
    )
    bound = session.execute(
        select(QueryModeRow.mode).where(QueryModeRow.query_id == qid)
    ).scalar_one()
    if bound != mode:
        raise _conflict()


def _conflict() -> QueryModeConflict:
    return QueryModeConflict(
        "this query id was used for the other kind of request (plain release or secure "
        "aggregation); the hub never sends one id as both"
    )
