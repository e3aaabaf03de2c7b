"""The node database: one engine per URL, the ORM base, and serialised write transactions."""

from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Dialect, Engine, Numeric, Text
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import DeclarativeBase, Session
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import GenericFunction
from sqlalchemy.types import TypeDecorator, TypeEngine

from contracts import budget
from node.exceptions import SchemaOutOfDate
from node.settings import NodeSettings
from runtime import db
from runtime.db import SessionLike, after_commit, connection_of
from runtime.migrations import Schema

__all__ = [
    "SCHEMA",
    "Base",
    "ExactDecimal",
    "SessionLike",
    "after_commit",
    "connection_of",
    "core_transaction",
    "dispose_engines",
    "engine_for",
    "exact_sum",
    "make_engine",
    "transaction",
    "url_for",
]


class Base(DeclarativeBase):
    metadata = db.metadata()


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


def _register_decimal_sum(dbapi_connection: Any) -> None:
    dbapi_connection.create_aggregate("decimal_sum", 1, _DecimalSum)


def make_engine(url: str) -> Engine:
    """A new engine for `url` (no schema check: `engine_for` is what services use)."""
    return db.make_engine(url, sqlite_timeout=60, on_sqlite_connect=_register_decimal_sum)


SCHEMA = Schema(
    package="node",
    package_dir=Path(__file__).parent,
    base=Base.metadata,
    versions=Path(__file__).parent / "migrations" / "versions",
    migrate_command="sauti node migrate",
    lock_key=0x5A07_0002,
    out_of_date=SchemaOutOfDate,
)


def _ensure_schema(engine: Engine, url: str) -> None:
    # The embedded SQLite is this node's alone: bring it up to date. A PostgreSQL
    # database is upgraded by its operator (`sauti node migrate`), after a backup.
    SCHEMA.ensure_schema(engine, upgrade=url.startswith("sqlite"))


_engines = db.Engines(_ensure_schema, sqlite_timeout=60, on_sqlite_connect=_register_decimal_sum)


def engine_for(url: str) -> Engine:
    """The shared engine for `url`, its schema checked (or created) on first use."""
    return _engines.get(url)


def dispose_engines() -> None:
    """Close every pooled connection (tests drop their databases afterwards)."""
    _engines.dispose()


# The key of `Session.info` that holds the URL a `transaction` was opened on.
DATABASE_URL = "database_url"


@contextmanager
def transaction(url: str) -> Iterator[Session]:
    """One write transaction on the node database: committed on success, rolled back on any
    error; hooks registered with `after_commit` run once it has committed."""
    with db.transaction(engine_for(url), info={DATABASE_URL: url}) as session:
        yield session


@contextmanager
def core_transaction(url: str) -> Iterator[Connection]:
    """`transaction` on a Core connection, without the ORM session (`runtime.db.
    core_transaction`): for the query path, whose statements are all Core."""
    with db.core_transaction(engine_for(url), info={DATABASE_URL: url}) as connection:
        yield connection


def url_for(*, home: Path, settings: NodeSettings | None = None) -> str:
    """The database of the node at `home`: from `settings` if given, else NODE_* / default."""
    return (settings or NodeSettings(home=home)).db_url
