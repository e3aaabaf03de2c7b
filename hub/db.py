"""Database engine, sessions and the declarative base shared by every hub domain."""

from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker


class Base(DeclarativeBase):
    pass


def make_engine(url: str) -> Engine:
    """SQLite serialises writers with BEGIN IMMEDIATE; PostgreSQL goes through psycopg 3."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        _begin_immediate(engine)
        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return create_engine(url, pool_pre_ping=True)


def _begin_immediate(engine: Engine) -> None:
    # SQLAlchemy's documented pysqlite recipe: take over transaction control from the
    # driver so every transaction takes the write lock up front and the audit chain never
    # forks under concurrent threads.
    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        # WAL: one fsync per commit instead of a rollback journal's several; the federation
        # writes once per node answer, so this bounds the hub's per-node cost (bench/federation.py).
        dbapi_connection.execute("PRAGMA journal_mode=WAL")

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def init_db(engine: Engine) -> sessionmaker[Session]:
    """Create every table (Alembic comes later) and return a session factory."""
    # Imported for their side effect of registering tables on Base.metadata.
    from hub.agreements import models as _agreements  # noqa: F401, PLC0415
    from hub.audit import models as _audit  # noqa: F401, PLC0415
    from hub.auth import models as _auth  # noqa: F401, PLC0415
    from hub.federation import models as _federation  # noqa: F401, PLC0415
    from hub.queries import models as _queries  # noqa: F401, PLC0415

    Base.metadata.create_all(engine)
    return sessionmaker(engine, expire_on_commit=False)
