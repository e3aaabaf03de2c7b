"""The node database: one engine per URL, the ORM base, and serialised write transactions."""

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import Dialect, Engine, MetaData, Numeric, Text, create_engine, event
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import GenericFunction
from sqlalchemy.types import TypeDecorator, TypeEngine

from contracts import budget
from node.settings import NodeSettings

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


class ExactDecimal(TypeDecorator[Decimal]):
    """A decimal kept exactly: unconstrained NUMERIC on PostgreSQL, its text on SQLite.

    SQLite has no decimal type, and a NUMERIC column there turns "0.37" into a double, so the
    text goes in a column of TEXT affinity and `exact_sum` adds it with an exact aggregate.
    """

    impl = Text
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(Numeric(asdecimal=True))
        return dialect.type_descriptor(Text())

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        number = budget.rho(value)
        return number if dialect.name == "postgresql" else str(number)

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        return None if value is None else budget.rho(value)


class exact_sum(GenericFunction[Decimal]):
    """SUM over an ExactDecimal column, exact on both databases (0 over no rows)."""

    type = ExactDecimal()
    inherit_cache = True


@compiles(exact_sum)
def _sum_numeric(element: exact_sum, compiler: SQLCompiler, **kw: Any) -> str:
    return f"coalesce(sum({compiler.process(element.clauses, **kw)}), 0)"


@compiles(exact_sum, "sqlite")
def _sum_text(element: exact_sum, compiler: SQLCompiler, **kw: Any) -> str:
    # sqlite3 never finalises an aggregate that saw no row: NULL, hence the coalesce.
    return f"coalesce(decimal_sum({compiler.process(element.clauses, **kw)}), '0')"


class _DecimalSum:
    """SQLite aggregate behind `exact_sum`: adds decimal text exactly, returns text."""

    def __init__(self) -> None:
        self.total = budget.ZERO

    def step(self, value: str | None) -> None:
        # Called once per row from inside SQLite: kept to one parse and one exact add.
        if value is not None:
            self.total = budget.EXACT.add(self.total, Decimal(value))

    def finalize(self) -> str:
        return str(self.total)


_engines: dict[str, Engine] = {}
_lock = threading.Lock()


def engine_for(url: str) -> Engine:
    """The shared engine for `url`, its schema checked (or created) on first use."""
    with _lock:
        engine = _engines.get(url)
        if engine is None:
            engine = make_engine(url)
            # Imported here, not at the top: the models import Base from this module.
            from node.migrations.schema import ensure_schema  # noqa: PLC0415

            # The embedded SQLite is this node's alone: bring it up to date. A PostgreSQL
            # database is upgraded by its operator (`sauti node migrate`), after a backup.
            try:
                ensure_schema(engine, upgrade=url.startswith("sqlite"))
            except Exception:
                engine.dispose()
                raise
            _engines[url] = engine
        return engine


def dispose_engines() -> None:
    """Close every pooled connection (tests drop their databases afterwards)."""
    with _lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()


def make_engine(url: str) -> Engine:
    """A new engine for `url` (no schema check: `engine_for` is what services use)."""
    if not url.startswith("sqlite"):
        if url.startswith("postgresql://"):
            url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
        return create_engine(url, pool_pre_ping=True)
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 60})

    # SQLAlchemy's documented pysqlite recipe: take over transaction control so that every
    # transaction starts with BEGIN IMMEDIATE, which serialises writers (ledger, audit chain)
    # up front instead of failing on lock upgrade.
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        dbapi_connection.execute("PRAGMA journal_mode=WAL")
        dbapi_connection.execute("PRAGMA busy_timeout=60000")
        dbapi_connection.create_aggregate("decimal_sum", 1, _DecimalSum)

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


# Keys of `Session.info` that `transaction` sets and reads.
DATABASE_URL = "database_url"
_AFTER_COMMIT = "after_commit"


@contextmanager
def transaction(url: str) -> Iterator[Session]:
    """One write transaction: committed on success, rolled back on any error.

    Hooks registered with `after_commit` run once it has committed (never on a rollback).
    """
    factory = sessionmaker(engine_for(url), expire_on_commit=False)
    with factory() as session:
        session.info[DATABASE_URL] = url
        with session.begin():
            yield session
        for hook in session.info.pop(_AFTER_COMMIT, []):
            hook()


def after_commit(session: Session, hook: Callable[[], None]) -> None:
    """Run `hook` (once) after the `transaction` that `session` belongs to commits."""
    hooks: list[Callable[[], None]] = session.info.setdefault(_AFTER_COMMIT, [])
    if hook not in hooks:
        hooks.append(hook)


def url_for(*, home: Path, settings: NodeSettings | None = None) -> str:
    """The database of the node at `home`: from `settings` if given, else NODE_* / default."""
    return (settings or NodeSettings(home=home)).db_url
