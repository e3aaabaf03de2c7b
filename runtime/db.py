"""Database plumbing: a UTC datetime type, constraint names, engines, transactions, URLs."""

import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from pydantic import SecretStr
from sqlalchemy import JSON, Connection, DateTime, Dialect, Engine, MetaData, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.types import TypeDecorator

from contracts.v1.base import utc

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def metadata() -> MetaData:
    """A side's one MetaData, with named constraints so later migrations can alter them
    (SQLite's batch mode needs the names)."""
    return MetaData(naming_convention=NAMING_CONVENTION)


class UtcDateTime(TypeDecorator[datetime]):
    """A moment, always aware and in UTC on the way out.

    SQLite keeps no offset and hands back naive values (UTC is what both sides write);
    PostgreSQL's `timestamptz` comes back in the session's zone. The DDL is exactly
    `DateTime(timezone=True)`, so existing migrations and databases stay as they are.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        # SQLite would store an aware value's wall time without its offset: store UTC.
        return None if value is None or value.tzinfo is None else utc(value)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else utc(value)


class JsonText(TypeDecorator[str]):
    """A JSON column's value given as its JSON text, bound as is: for a document that
    arrives as JSON (a verified, signed payload), where parsing it only for the driver to
    serialise it again costs more than the rest of storing it. Use it on the bind only
    (`type_coerce(bindparam(...), JsonText())`); the column stays `JSON` and reads back
    parsed. The text must be valid JSON: it is not checked here.
    """

    impl = JSON
    cache_ok = True

    def bind_processor(self, dialect: Dialect) -> Callable[[str | None], Any]:
        if dialect.name == "postgresql" and dialect.driver == "psycopg":
            from psycopg.types.json import Json  # noqa: PLC0415 (PostgreSQL engines only)

            return lambda text: None if text is None else Json(text, dumps=_as_is)
        if dialect.name == "sqlite":  # JSON is TEXT there
            return lambda text: text
        raise NotImplementedError(f"JsonText on {dialect.name}+{dialect.driver}")


def _as_is(text: Any) -> str:
    return str(text)


# A transaction started with this execution option only reads (see `read_only`).
READ_ONLY_OPTION = "sauti_read_only"


def make_engine(
    url: str,
    *,
    sqlite_timeout: float = 30,
    on_sqlite_connect: Callable[[Any], None] | None = None,
) -> Engine:
    """SQLite serialises writers with BEGIN IMMEDIATE (WAL); PostgreSQL goes through psycopg 3.

    `on_sqlite_connect` gets each new sqlite3 connection (to register functions on it).
    """
    if not url.startswith("sqlite"):
        if url.startswith("postgresql://"):
            url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
        return create_engine(url, pool_pre_ping=True)
    engine = create_engine(
        url, connect_args={"check_same_thread": False, "timeout": sqlite_timeout}
    )

    # SQLAlchemy's documented pysqlite recipe: take over transaction control from the driver
    # so every transaction takes the write lock up front (ledger, audit chain) instead of
    # failing on a lock upgrade, and the audit chain never forks under concurrent threads.
    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        # WAL: one fsync per commit instead of a rollback journal's several, and readers
        # never wait for the writer.
        dbapi_connection.execute("PRAGMA journal_mode=WAL")
        # FULL: every commit syncs the WAL, so a committed charge or audit entry survives
        # power loss. Set, not left to the build's default (some SQLite builds default WAL
        # databases to NORMAL, which syncs only at checkpoints and may lose the last commits).
        dbapi_connection.execute("PRAGMA synchronous=FULL")
        if on_sqlite_connect is not None:
            on_sqlite_connect(dbapi_connection)

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        # A transaction marked read-only begins deferred: in WAL mode it reads a snapshot
        # without the write lock, so long reads never hold up writers (nor wait for them).
        deferred = conn.get_execution_options().get(READ_ONLY_OPTION)
        conn.exec_driver_sql("BEGIN" if deferred else "BEGIN IMMEDIATE")

    return engine


def read_only(session: Session) -> Session:
    """Mark the session's next transaction as one that only reads; returns the session.

    Call before the transaction's first statement. On SQLite it then takes no write lock
    (a write in it would fail, not wait); on PostgreSQL it changes nothing.
    """
    session.connection(execution_options={READ_ONLY_OPTION: True})
    return session


class Engines:
    """One shared engine per URL, each prepared once (its schema checked) on first use."""

    def __init__(self, prepare: Callable[[Engine, str], None], **options: Any) -> None:
        self._prepare = prepare
        self._options = options
        self._engines: dict[str, Engine] = {}
        self._lock = threading.Lock()

    def get(self, url: str) -> Engine:
        with self._lock:
            engine = self._engines.get(url)
            if engine is None:
                engine = make_engine(url, **self._options)
                try:
                    self._prepare(engine, url)
                except Exception:
                    engine.dispose()
                    raise
                self._engines[url] = engine
            return engine

    def dispose(self) -> None:
        """Close every pooled connection (tests drop their databases afterwards)."""
        with self._lock:
            for engine in self._engines.values():
                engine.dispose()
            self._engines.clear()


_AFTER_COMMIT = "after_commit"
_factories: "weakref.WeakKeyDictionary[Engine, sessionmaker[Session]]" = weakref.WeakKeyDictionary()
_factories_lock = threading.Lock()


def _factory(engine: Engine) -> sessionmaker[Session]:
    """One session factory per engine: a factory makes its own Session subclass, whose event
    dispatch SQLAlchemy builds on first use (about half a millisecond), so a factory made
    per transaction paid that on every one."""
    with _factories_lock:
        factory = _factories.get(engine)
        if factory is None:
            factory = _factories[engine] = sessionmaker(engine, expire_on_commit=False)
        return factory


@contextmanager
def transaction(engine: Engine, *, info: dict[str, Any] | None = None) -> Iterator[Session]:
    """One write transaction: committed on success, rolled back on any error.

    `info` goes into `Session.info`. Hooks registered with `after_commit` run once it has
    committed (never on a rollback).
    """
    with _factory(engine)() as session:
        session.info.update(info or {})
        with session.begin():
            yield session
        for hook in session.info.pop(_AFTER_COMMIT, []):
            hook()


# What a service that runs only Core statements takes: the ORM session of a `transaction`,
# or the connection of a `core_transaction` (both execute statements and keep `info`).
SessionLike = Session | Connection


def connection_of(work: SessionLike) -> Connection:
    """The connection a session's (or a Core transaction's) statements run on."""
    return work if isinstance(work, Connection) else work.connection()


@contextmanager
def core_transaction(engine: Engine, *, info: dict[str, Any] | None = None) -> Iterator[Connection]:
    """`transaction` without the ORM: one write transaction on a pooled connection, committed
    on success, rolled back on any error, `after_commit` hooks run once it has committed.
    Every key this transaction puts in the connection's `info` (`info` itself, hooks, the
    audit chain's locked tip) is removed when it ends: the next user of the pooled
    connection starts without them.

    For paths that run only Core statements (a node's query: charge, release, audit
    entries), where the ORM session's own bookkeeping costs more than its statements.
    """
    with engine.connect() as connection:
        kept = set(connection.info)
        connection.info.update(info or {})
        try:
            with connection.begin():
                yield connection
            hooks: list[Callable[[], None]] = connection.info.get(_AFTER_COMMIT, [])
        finally:
            for key in set(connection.info) - kept:  # what this transaction put there
                del connection.info[key]
    for hook in hooks:
        hook()


def after_commit(session: SessionLike, hook: Callable[[], None]) -> None:
    """Run `hook` (once) after the `transaction` (or `core_transaction`) that `session`
    belongs to commits."""
    hooks: list[Callable[[], None]] = session.info.setdefault(_AFTER_COMMIT, [])
    if hook not in hooks:
        hooks.append(hook)


def database_url(*, url: SecretStr | None, password: SecretStr | None, default: str) -> str:
    """The URL with its password merged in: for the engine only, never for a log.

    The password is a setting of its own so the URL can be logged while it stays a secret;
    `default` (the home's SQLite file) serves when no URL is set.
    """
    if url is None:
        return default
    if password is None:
        return url.get_secret_value()
    merged = make_url(url.get_secret_value()).set(password=password.get_secret_value())
    return merged.render_as_string(hide_password=False)
