"""Database engine, sessions and the declarative base shared by every hub domain."""

from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

from hub.exceptions import SchemaOutOfDate
from hub.home import check_database_file
from runtime import db
from runtime.db import read_only
from runtime.migrations import Schema

__all__ = ["SCHEMA", "Base", "init_db", "make_engine", "read_only"]


class Base(DeclarativeBase):
    metadata = db.metadata()


def make_engine(url: str) -> Engine:
    """The hub's engine: SQLite waits up to 30 s for the write lock (see `runtime.db`)."""
    return db.make_engine(url, sqlite_timeout=30)


SCHEMA = Schema(
    package="hub",
    package_dir=Path(__file__).parent,
    base=Base.metadata,
    versions=Path(__file__).parent / "migrations" / "versions",
    migrate_command="sauti hub migrate",
    lock_key=0x5A07_0001,
    out_of_date=SchemaOutOfDate,
)


def init_db(engine: Engine) -> sessionmaker[Session]:
    """Check (or create) the schema and return a session factory.

    A SQLite file is only created in a hub home (`hub.home.check_database_file`): every
    command opens its database here, so a missing home is one `hub_not_initialised` line.
    """
    if engine.dialect.name == "sqlite" and engine.url.database not in (None, "", ":memory:"):
        check_database_file(Path(str(engine.url.database)))
    # The embedded SQLite is this hub's alone: bring it up to date. A PostgreSQL database is
    # upgraded by its operator (`sauti hub migrate`, the Helm chart's job), after a backup.
    SCHEMA.ensure_schema(engine, upgrade=engine.dialect.name == "sqlite")
    return sessionmaker(engine, expire_on_commit=False)
