"""Database engine, sessions and the declarative base shared by every hub domain."""

from sqlalchemy import Engine
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

from runtime import db
from runtime.db import read_only

__all__ = ["Base", "init_db", "make_engine", "read_only"]


class Base(DeclarativeBase):
    metadata = db.metadata()


def make_engine(url: str) -> Engine:
    """The hub's engine: SQLite waits up to 30 s for the write lock (see `runtime.db`)."""
    return db.make_engine(url, sqlite_timeout=30)


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
