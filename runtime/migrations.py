"""A database's schema version: the start-up check, `sauti hub|node migrate`, models.

One `Schema` per side (`hub.db.SCHEMA`, `node.db.SCHEMA`) names what differs: the package
whose `*/models.py` hold the tables, its revisions folder, the command an operator runs,
the advisory lock key and the side's own exception. The Alembic environment is the one in
`runtime/alembic/`.
"""

import functools
import importlib
from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, MetaData, inspect, text

ENVIRONMENT = Path(__file__).parent / "alembic"


@dataclass
class Schema:
    """One side's tables and revisions, and how it refuses a database it cannot use."""

    # The package whose `<domain>/models.py` modules register tables on `base`.
    package: str
    package_dir: Path
    # The side's declarative metadata (`Base.metadata`).
    base: MetaData
    versions: Path
    migrate_command: str
    # Serialises schema changes between processes starting at once on one PostgreSQL
    # database (pg_advisory_xact_lock key; hub and node differ, so both may share a server).
    lock_key: int
    # Raised with a message naming what to do: the side's own `schema_out_of_date` error.
    out_of_date: type[Exception]

    def metadata(self) -> MetaData:
        """Every table: found by walking the package, so a new domain never misses one."""
        for models in sorted(self.package_dir.glob("*/models.py")):
            importlib.import_module(f"{self.package}.{models.parent.name}.models")
        return self.base

    def alembic_config(self, connection: Connection | None = None) -> Config:
        config = Config()
        config.set_main_option("script_location", str(ENVIRONMENT))
        config.set_main_option("version_locations", str(self.versions))
        config.set_main_option("path_separator", "os")
        config.attributes["connection"] = connection
        config.attributes["metadata"] = self.metadata()
        return config

    def head(self) -> str:
        return _head(str(self.versions))

    def state(self, engine: Engine) -> tuple[str | None, str]:
        """The database's revision (None: no migration history) and this version's head."""
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision(), self.head()

    def ensure_schema(self, engine: Engine, *, upgrade: bool) -> None:
        """Make sure the database holds this version's schema before anything uses it.

        An empty database gets the whole schema at once (what migrating from empty would
        build, which tests/deploy checks). A database at an older revision is upgraded when
        `upgrade` (the embedded SQLite default: nobody else is using it), else refused with
        the command to run, so a shared PostgreSQL is migrated by its operator, after a
        backup, exactly once.
        """
        with engine.begin() as conn:
            self._lock(conn)
            context = MigrationContext.configure(conn)
            current = context.get_current_revision()
            if current == self.head():
                return
            if current is None:
                if _has_tables(conn):
                    raise self.out_of_date(
                        "the database has tables but no migration history; "
                        f"run `{self.migrate_command}` (it adopts a schema that matches)"
                    )
                self.metadata().create_all(conn)
                context.stamp(self._scripts(), "head")
                return
            self._check_known(current)
            if not upgrade:
                raise self.out_of_date(
                    f"the database schema is at revision {current}, this version needs "
                    f"{self.head()}; back up, then run `{self.migrate_command}`"
                )
            command.upgrade(self.alembic_config(conn), "head")

    def migrate(self, engine: Engine) -> tuple[str | None, str]:
        """Upgrade to head (the migrate command); returns the revisions before and after."""
        with engine.begin() as conn:
            self._lock(conn)
            context = MigrationContext.configure(conn)
            before = context.get_current_revision()
            if before is None and _has_tables(conn):
                # A database made by create_all before migrations existed: adopt it only if
                # it is exactly the first schema, never guess at a partial one.
                if compare_metadata(context, self.metadata()):
                    raise self.out_of_date(
                        "the database has tables but no migration history, and they differ "
                        "from this version's models; restore a backup or migrate it by hand"
                    )
                context.stamp(self._scripts(), "head")
                return before, self.head()
            if before is not None:
                self._check_known(before)
            command.upgrade(self.alembic_config(conn), "head")
        return before, self.head()

    def downgrade(self, engine: Engine, revision: str) -> None:
        """Step back to `revision` ("base": empty). Tests only; operators restore a backup."""
        with engine.begin() as conn:
            command.downgrade(self.alembic_config(conn), revision)

    def _scripts(self) -> ScriptDirectory:
        return _scripts(str(self.versions))

    def _lock(self, conn: Connection) -> None:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": self.lock_key})

    def _check_known(self, revision: str) -> None:
        if revision not in {r.revision for r in self._scripts().walk_revisions()}:
            raise self.out_of_date(
                f"the database schema is at revision {revision}, which this version of Sauti "
                "does not know (a newer version migrated it); install that version or newer"
            )


@functools.cache
def _scripts(versions: str) -> ScriptDirectory:
    config = Config()
    config.set_main_option("script_location", str(ENVIRONMENT))
    config.set_main_option("version_locations", versions)
    config.set_main_option("path_separator", "os")
    return ScriptDirectory.from_config(config)


@functools.cache
def _head(versions: str) -> str:
    revision = _scripts(versions).get_current_head()
    assert revision is not None
    return revision


def _has_tables(conn: Connection) -> bool:
    return any(name != "alembic_version" for name in inspect(conn).get_table_names())
