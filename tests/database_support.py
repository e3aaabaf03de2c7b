"""Fresh test databases made by copying a migrated template instead of building a schema.

Every storage test gets a database of its own. Building a side's schema in each one (what
`ensure_schema` does on an empty database: create every table, stamp the head revision)
took most of a PostgreSQL test's set-up, and dropping the database afterwards (a forced
checkpoint) most of its teardown. Instead:

- each pytest process (each xdist worker) builds one template database per side the first
  time a test asks for it, with the side's own `SCHEMA.ensure_schema`, and clones every
  test's database from it (`CREATE DATABASE ... TEMPLATE`, a block copy); a template
  belongs to one process, so no two workers ever race to build or clone one;
- a SQLite test's file is a copy of a template file built the same way;
- a used database is not dropped but made equal to its template again on a background
  thread while the next test runs (`Recycler`): its connections are ended, every row
  deleted and the template's rows (the head revision) written back, each sequence set
  where the template's stands, and the emptied files truncated by VACUUM, so rows go in
  and come back in the order they would in a fresh copy. A database whose schema no longer
  matches its template's, or an empty one (whose tests build a schema), is dropped;
  a later test takes a recycled database under a new name of its own (a rename), so no
  name or URL is ever handed out twice. Cloning and dropping cost seconds of the server's
  time each; recycling a few milliseconds;
- the templates and what is left are dropped at the end of the session.

A clone holds exactly what the side's first start on an empty database writes, so the app's
own start-up check then finds it at head. Tests of that empty-database path itself (the
migrations, `migrate` commands) ask for an empty database: the default outside tests/hub
and tests/node (the `database_schema` fixture).
"""

import os
import queue
import secrets
import shutil
import threading
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import psycopg

Side = Literal["hub", "node"]
# Used databases waiting for the recycler before a test's teardown waits for it.
PENDING_RECYCLES = 4
# Everything a database's schema is made of outside the system schemas, and its own
# settings: a used database whose fingerprint still equals a fresh clone's can stand for one.
FINGERPRINT = """
SELECT md5(coalesce(string_agg(item, E'\\n' ORDER BY item), '')) FROM (
  SELECT format('namespace %s', nspname) FROM pg_namespace
  UNION ALL SELECT format('relation %s %s %s', c.oid::regclass, c.relkind, c.relpersistence)
    FROM pg_class c WHERE c.relnamespace IN user_schemas
  UNION ALL SELECT format('column %s %s %s %s %s %s', a.attrelid::regclass, a.attname,
      format_type(a.atttypid, a.atttypmod), a.attnotnull, a.attisdropped,
      pg_get_expr(d.adbin, d.adrelid))
    FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
    LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
    WHERE c.relnamespace IN user_schemas AND a.attnum > 0
  UNION ALL SELECT format('constraint %s %s %s', conrelid::regclass, conname,
      pg_get_constraintdef(oid)) FROM pg_constraint WHERE connamespace IN user_schemas
  UNION ALL SELECT format('index %s', pg_get_indexdef(indexrelid)) FROM pg_index i
    JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relnamespace IN user_schemas
  UNION ALL SELECT format('trigger %s %s %s', tgrelid::regclass, tgname, tgenabled)
    FROM pg_trigger WHERE NOT tgisinternal
  UNION ALL SELECT format('rule %s %s', ev_class::regclass, rulename) FROM pg_rewrite r
    JOIN pg_class c ON c.oid = r.ev_class WHERE c.relnamespace IN user_schemas
  UNION ALL SELECT format('policy %s %s', polrelid::regclass, polname) FROM pg_policy
  UNION ALL SELECT format('function %s', oid::regprocedure) FROM pg_proc
    WHERE pronamespace IN user_schemas
  UNION ALL SELECT format('type %s %s', oid::regtype, typtype) FROM pg_type
    WHERE typnamespace IN user_schemas AND typtype IN ('c', 'd', 'e', 'm', 'r')
  UNION ALL SELECT format('label %s %s %s', enumtypid::regtype, enumlabel, enumsortorder)
    FROM pg_enum
  UNION ALL SELECT format('extension %s %s', extname, extversion) FROM pg_extension
  UNION ALL SELECT format('large object %s', oid) FROM pg_largeobject_metadata
  UNION ALL SELECT format('setting %s %s', setrole, setconfig) FROM pg_db_role_setting
    WHERE setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database())
) AS parts(item)
""".replace(
    "user_schemas",
    "(SELECT oid FROM pg_namespace WHERE nspname NOT IN "
    "('pg_catalog', 'information_schema', 'pg_toast') AND nspname NOT LIKE 'pg_temp%'"
    " AND nspname NOT LIKE 'pg_toast_temp%')",
)
TABLES = """
SELECT format('%I.%I', schemaname, tablename) FROM pg_tables
WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1
"""
SEQUENCES = """
SELECT format('%I.%I', schemaname, sequencename), coalesce(last_value, start_value),
       last_value IS NOT NULL
FROM pg_sequences WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1
"""


def build_schema(side: Side, url: str) -> None:
    """What the side's first start on an empty database does (`ensure_schema`)."""
    # Imported here: tests that never ask for a side's schema do not pay for its models.
    from hub import db as hub_db  # noqa: PLC0415
    from node import db as node_db  # noqa: PLC0415

    make_engine, schema = {
        "hub": (hub_db.make_engine, hub_db.SCHEMA),
        "node": (node_db.make_engine, node_db.SCHEMA),
    }[side]
    engine = make_engine(url)
    try:
        schema.ensure_schema(engine, upgrade=engine.dialect.name == "sqlite")
    finally:
        engine.dispose()


@dataclass(frozen=True)
class FreshState:
    """What a fresh clone of a side's template holds, read from the first clone."""

    fingerprint: str
    tables: tuple[str, ...]
    # COPY text of each table that holds rows when fresh (the head revision).
    rows: dict[str, bytes]
    # (sequence, value, is_called): what `setval` sets each sequence back to.
    sequences: tuple[tuple[str, int, bool], ...]

    @classmethod
    def read(cls, conn: psycopg.Connection) -> "FreshState":
        tables = tuple(name for (name,) in conn.execute(TABLES))
        rows = {}
        for table in tables:
            with conn.cursor().copy(f"COPY {table} TO STDOUT") as copy:
                data = b"".join(bytes(block) for block in copy)
            if data:
                rows[table] = data
        return cls(
            fingerprint=fingerprint(conn),
            tables=tables,
            rows=rows,
            sequences=tuple(conn.execute(SEQUENCES).fetchall()),
        )

    def restore(self, conn: psycopg.Connection) -> None:
        """Make the database `conn` is on hold what a fresh clone holds (same schema)."""
        with conn.transaction():
            # Foreign keys are triggers; the replica role skips them while every row goes.
            conn.execute("SET LOCAL session_replication_role = replica")
            for table in self.tables:
                conn.execute(f"DELETE FROM {table}")
            for table, data in self.rows.items():
                with conn.cursor().copy(f"COPY {table} FROM STDIN") as copy:
                    copy.write(data)
            for sequence, value, is_called in self.sequences:
                conn.execute("SELECT setval(%s::regclass, %s, %s)", (sequence, value, is_called))
        # Truncates each emptied file, as a fresh clone's: new rows then sit in insertion order.
        conn.execute(f"VACUUM {', '.join(self.tables)}")


def fingerprint(conn: psycopg.Connection) -> str:
    row = conn.execute(FINGERPRINT).fetchone()
    assert row is not None
    return str(row[0])


class PostgresDatabases:
    """One process's PostgreSQL test databases: templates, clones, recycling and drops."""

    def __init__(self, admin_dsn: str) -> None:
        self.admin_dsn = admin_dsn
        self.user = admin_dsn.split("user=")[1].split(maxsplit=1)[0]
        # The worker's pid names what a killed worker leaves behind.
        self.prefix = f"sauti_test_{os.getpid()}"
        self.templates: dict[Side, str] = {}
        self._fresh: dict[Side, FreshState] = {}
        self._sides: dict[str, Side | None] = {}
        # Recycled databases, ready to be renamed for a test.
        self._spares: dict[Side, deque[str]] = {"hub": deque(), "node": deque()}
        self._used: queue.Queue[str | None] = queue.Queue(maxsize=PENDING_RECYCLES)
        self._failures: list[BaseException] = []
        self._recycler = threading.Thread(target=self._recycle_forever, daemon=True)
        self._recycler.start()

    def url(self, name: str) -> str:
        return f"postgresql+psycopg://{self.user}@127.0.0.1:5432/{name}"

    def create(self, side: Side | None) -> str:
        """A new database (empty, or holding `side`'s schema at head); its name."""
        self.raise_failures()
        name = f"{self.prefix}_{secrets.token_hex(4)}"
        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            spare = self._spare(side)
            if spare is not None:
                conn.execute(f'ALTER DATABASE "{spare}" RENAME TO "{name}"')
            else:
                template = "template1" if side is None else self._template(side)
                conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
                # Commits need not wait for the disk: no test survives a server crash anyway.
                conn.execute(f'ALTER DATABASE "{name}" SET synchronous_commit = off')
        if side is not None and side not in self._fresh:
            with psycopg.connect(self.dsn(name), autocommit=True) as conn:
                self._fresh[side] = FreshState.read(conn)
        self._sides[name] = side
        return name

    def release(self, name: str) -> None:
        """The test is done with `name`: recycle it (or drop it) in the background."""
        self._used.put(name)

    def close(self) -> None:
        """Drop what is still pending, the spares and the templates; raise the first failure."""
        self._used.put(None)
        self._recycler.join()
        for spares in self._spares.values():
            while spares:
                self._drop(spares.popleft())
        for template in self.templates.values():
            self._drop(template)
        self.raise_failures()

    def raise_failures(self) -> None:
        if self._failures:
            raise RuntimeError("recycling a test database failed") from self._failures[0]

    def dsn(self, name: str) -> str:
        """A libpq connection string for `name`, as the admin user."""
        return self.admin_dsn.replace("dbname=test", f"dbname={name}")

    def _spare(self, side: Side | None) -> str | None:
        try:
            return None if side is None else self._spares[side].popleft()
        except IndexError:
            return None

    def _template(self, side: Side) -> str:
        name = self.templates.get(side)
        if name is None:
            name = f"{self.prefix}_template_{side}_{secrets.token_hex(2)}"
            with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{name}"')
            build_schema(side, self.url(name))
            self.templates[side] = name
        return name

    def settle(self) -> None:
        """Wait until every released database is recycled or dropped."""
        self._used.join()

    def spares(self, side: Side) -> list[str]:
        return list(self._spares[side])

    def _recycle_forever(self) -> None:
        while (name := self._used.get()) is not None:
            try:
                side = self._sides.pop(name)
                if side is not None and self._restore(name, self._fresh[side]):
                    self._spares[side].append(name)
                else:
                    self._drop(name)
            except Exception as error:  # raised in the next test's set-up
                self._failures.append(error)
            finally:
                self._used.task_done()

    def _restore(self, name: str, fresh: FreshState) -> bool:
        """Make `name` equal to a fresh clone again; False if its schema has changed."""
        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            # What the test left connected (as DROP DATABASE ... WITH (FORCE) would).
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (name,),
            )
        with psycopg.connect(self.dsn(name), autocommit=True) as conn:
            if fingerprint(conn) != fresh.fingerprint:
                return False
            try:
                fresh.restore(conn)
            except psycopg.errors.InsufficientPrivilege:  # not a superuser: drop, as before
                return False
        return True

    def _drop(self, name: str) -> None:
        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class SqliteTemplates:
    """One process's SQLite template files, one per side, copied into each test's path."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.files: dict[Side, Path] = {}

    def copy_to(self, side: Side, path: Path) -> None:
        template = self.files.get(side)
        if template is None:
            template = self.directory / f"{side}.sqlite"
            build_schema(side, f"sqlite:///{template}")
            # Closing the last connection checkpoints the WAL into the file.
            assert not Path(f"{template}-wal").exists()
            self.files[side] = template
        shutil.copyfile(template, path)
