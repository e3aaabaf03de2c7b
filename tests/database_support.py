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
- databases are dropped on a background thread while the next test runs (a few at most
  wait, so a slow server cannot pile them up), and the templates at the end of the session.

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
from pathlib import Path
from typing import Literal

import psycopg

Side = Literal["hub", "node"]
# Databases waiting to be dropped before a test's teardown waits for the dropper.
PENDING_DROPS = 4


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


class PostgresDatabases:
    """One process's PostgreSQL test databases: templates, clones and background drops."""

    def __init__(self, admin_dsn: str) -> None:
        self.admin_dsn = admin_dsn
        self.user = admin_dsn.split("user=")[1].split(maxsplit=1)[0]
        # The worker's pid names what a killed worker leaves behind.
        self.prefix = f"sauti_test_{os.getpid()}"
        self.templates: dict[Side, str] = {}
        self._drops: queue.Queue[str | None] = queue.Queue(maxsize=PENDING_DROPS)
        self._failures: list[BaseException] = []
        self._dropper = threading.Thread(target=self._drop_forever, daemon=True)
        self._dropper.start()

    def url(self, name: str) -> str:
        return f"postgresql+psycopg://{self.user}@127.0.0.1:5432/{name}"

    def create(self, side: Side | None) -> str:
        """A new database (empty, or holding `side`'s schema at head); its name."""
        self.raise_failures()
        name = f"{self.prefix}_{secrets.token_hex(4)}"
        template = "template1" if side is None else self._template(side)
        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
            # Commits need not wait for the disk: no test survives a server crash anyway.
            conn.execute(f'ALTER DATABASE "{name}" SET synchronous_commit = off')
        return name

    def drop_later(self, name: str) -> None:
        self._drops.put(name)

    def close(self) -> None:
        """Drop what is still pending and the templates; raise the first failed drop."""
        self._drops.put(None)
        self._dropper.join()
        for template in self.templates.values():
            self._drop(template)
        self.raise_failures()

    def raise_failures(self) -> None:
        if self._failures:
            raise RuntimeError("dropping a test database failed") from self._failures[0]

    def _template(self, side: Side) -> str:
        name = self.templates.get(side)
        if name is None:
            name = f"{self.prefix}_template_{side}_{secrets.token_hex(2)}"
            with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{name}"')
            build_schema(side, self.url(name))
            self.templates[side] = name
        return name

    def _drop_forever(self) -> None:
        while (name := self._drops.get()) is not None:
            try:
                self._drop(name)
            except Exception as error:  # raised in the next test's set-up
                self._failures.append(error)

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
