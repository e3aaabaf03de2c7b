"""Database engine, sessions and the declarative base shared by every hub domain."""

from typing import Any

from sqlalchemy import Engine, MetaData, create_engine, event
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    # Named constraints, so later migrations can alter them (SQLite batch mode needs names).
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


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
        # A transaction marked read-only (`read_only`) begins deferred: in WAL mode it reads
        # a snapshot without the write lock, so progress reads never make the recorder of node
        # answers sleep in SQLite's coarse busy steps (nor wait for it).
        deferred = conn.get_execution_options().get(READ_ONLY_OPTION)
        conn.exec_driver_sql("BEGIN" if deferred else "BEGIN IMMEDIATE")


READ_ONLY_OPTION = "sauti_read_only"


def read_only(session: Session) -> Session:
    """Mark the session's next transaction as one that only reads; returns the session.

    Call before the transaction's first statement. On SQLite it then takes no write lock
    (a write in it would fail, not wait); on PostgreSQL it changes nothing.
    """
    session.connection(execution_options={READ_ONLY_OPTION: True})
    return session


def init_db(engine: Engine) -> sessionmaker[Session]:
    """Check (or create) the schema and return a session factory."""
    # Imported for their side effect of registering tables on Base.metadata.
    from hub.agreements import models as _agreements  # noqa: F401, PLC0415
    from hub.audit import models as _audit  # noqa: F401, PLC0415
    from hub.auth import models as _auth  # noqa: F401, PLC0415
    from hub.federation import models as _federation  # noqa: F401, PLC0415
    from hub.migrations.schema import ensure_schema  # noqa: PLC0415 - it imports this module
    from hub.queries import models as _queries  # noqa: F401, PLC0415

    # The embedded SQLite is this hub's alone: bring it up to date. A PostgreSQL database is
    # upgraded by its operator (`sauti hub migrate`, the Helm chart's job), after a backup.
    ensure_schema(engine, upgrade=engine.dialect.name == "sqlite")
    return sessionmaker(engine, expire_on_commit=False)
