"""The node database's schema version: the start-up check, `sauti node migrate`, models."""

import functools
import importlib
from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, MetaData, inspect, text

from node.exceptions import SchemaOutOfDate

HERE = Path(__file__).parent
MIGRATE_COMMAND = "sauti node migrate"
# Serialises schema changes between processes starting at once on one PostgreSQL database
# (pg_advisory_xact_lock key; hub and node differ, so both may share one server).
_PG_LOCK_KEY = 0x5A07_0002


def metadata() -> MetaData:
    """Every node table: each domain's models.py registers its tables on the one Base."""
    from node.db import Base  # noqa: PLC0415 - node.db imports this module

    package = HERE.parent
    # Found by walking the package, so a new domain's models never miss a migration.
    for models in sorted(package.glob("*/models.py")):
        importlib.import_module(f"node.{models.parent.name}.models")
    return Base.metadata


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(HERE))
    config.attributes["connection"] = connection
    return config


@functools.cache
def head() -> str:
    revision = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert revision is not None
    return revision


def state(engine: Engine) -> tuple[str | None, str]:
    """The database's revision (None: no migration history) and this version's head."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision(), head()


def ensure_schema(engine: Engine, *, upgrade: bool) -> None:
    """Make sure the database holds this version's schema before anything uses it.

    An empty database gets the whole schema at once (what migrating from empty would build,
    which tests/migrations checks). A database at an older revision is upgraded when `upgrade`
    (the embedded SQLite default: nobody else is using it), else refused with the command to
    run, so a shared PostgreSQL is migrated by its operator, after a backup, exactly once.
    """
    with engine.begin() as conn:
        _lock(conn)
        context = MigrationContext.configure(conn)
        current = context.get_current_revision()
        if current == head():
            return
        if current is None:
            if _has_tables(conn):
                raise SchemaOutOfDate(
                    "the database has tables but no migration history; "
                    f"run `{MIGRATE_COMMAND}` (it adopts a schema that matches)"
                )
            metadata().create_all(conn)
            context.stamp(ScriptDirectory.from_config(alembic_config()), "head")
            return
        _check_known(current)
        if not upgrade:
            raise SchemaOutOfDate(
                f"the database schema is at revision {current}, this version needs {head()}; "
                f"back up, then run `{MIGRATE_COMMAND}`"
            )
        command.upgrade(alembic_config(conn), "head")


def migrate(engine: Engine) -> tuple[str | None, str]:
    """Upgrade to head (`sauti node migrate`); returns the revisions before and after."""
    with engine.begin() as conn:
        _lock(conn)
        context = MigrationContext.configure(conn)
        before = context.get_current_revision()
        if before is None and _has_tables(conn):
            # A database made by create_all before migrations existed: adopt it only if it
            # is exactly the first schema, never guess at a partial one.
            if compare_metadata(context, metadata()):
                raise SchemaOutOfDate(
                    "the database has tables but no migration history, and they differ from "
                    "this version's models; restore a backup or migrate it by hand"
                )
            context.stamp(ScriptDirectory.from_config(alembic_config()), "head")
            return before, head()
        if before is not None:
            _check_known(before)
        command.upgrade(alembic_config(conn), "head")
    return before, head()


def downgrade(engine: Engine, revision: str) -> None:
    """Step back to `revision` ("base": empty). Tests only; operators restore a backup."""
    with engine.begin() as conn:
        command.downgrade(alembic_config(conn), revision)


def _lock(conn: Connection) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})


def _has_tables(conn: Connection) -> bool:
    return any(name != "alembic_version" for name in inspect(conn).get_table_names())


def _check_known(revision: str) -> None:
    revisions = {r.revision for r in ScriptDirectory.from_config(alembic_config()).walk_revisions()}
    if revision not in revisions:
        raise SchemaOutOfDate(
            f"the database schema is at revision {revision}, which this version of Sauti "
            "does not know (a newer version migrated it); install that version or newer"
        )
