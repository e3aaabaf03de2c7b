"""Cost of the start-up schema check against plain create_all, per fresh database.

Prints milliseconds and ratios for the hub and node schemas on SQLite (and PostgreSQL when
it runs on 127.0.0.1): `create_all` (what start-up did before migrations), `ensure_schema`
on an empty database (create_all + stamp), on one already at head (every later start), and
a full Alembic `migrate` from empty (what `sauti * migrate` runs).
"""

import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import psycopg
from sqlalchemy import Engine

from hub.db import SCHEMA as hub_schema
from hub.db import make_engine as hub_engine
from node.db import SCHEMA as node_schema
from node.db import make_engine as node_engine
from runtime.migrations import Schema

ROUNDS = 7
ADMIN = "host=127.0.0.1 port=5432 dbname=test user={user} connect_timeout=3"


def postgres_user() -> str | None:
    for user in ("postgres", "root"):
        try:
            with psycopg.connect(ADMIN.format(user=user), autocommit=True):
                return user
        except psycopg.OperationalError:
            continue
    return None


def fresh(kind: str, user: str | None, scratch: Path) -> tuple[str, Callable[[], None]]:
    name = f"bench_{uuid.uuid4().hex[:12]}"
    if kind == "sqlite":
        return f"sqlite:///{scratch}/{name}.sqlite", lambda: None
    assert user is not None
    with psycopg.connect(ADMIN.format(user=user), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with psycopg.connect(ADMIN.format(user=user), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return f"postgresql+psycopg://{user}@127.0.0.1:5432/{name}", drop


def timed(
    kind: str,
    user: str | None,
    make: Callable[[str], Engine],
    step: Callable[[Engine], object],
    *,
    prepare: Callable[[Engine], object] | None = None,
) -> float:
    samples = []
    with tempfile.TemporaryDirectory() as scratch:
        for _ in range(ROUNDS):
            url, drop = fresh(kind, user, Path(scratch))
            engine = make(url)
            try:
                if prepare:
                    prepare(engine)
                started = time.perf_counter()
                step(engine)
                samples.append((time.perf_counter() - started) * 1000)
            finally:
                engine.dispose()
                drop()
    return statistics.median(samples)


def report(
    app: str, schema: Schema, make: Callable[[str], Engine], kind: str, user: str | None
) -> None:
    def ensure(engine: Engine) -> None:
        schema.ensure_schema(engine, upgrade=False)

    base = timed(kind, user, make, lambda e: schema.metadata().create_all(e))
    empty = timed(kind, user, make, ensure)
    at_head = timed(kind, user, make, ensure, prepare=ensure)
    full = timed(kind, user, make, schema.migrate)
    print(
        f"{app:4} {kind:8} create_all {base:7.1f} ms | start-up on empty {empty:7.1f} ms "
        f"({empty / base:4.2f}x) | start-up at head {at_head:6.1f} ms ({at_head / base:4.2f}x)"
        f" | migrate from empty {full:7.1f} ms ({full / base:4.2f}x)"
    )


def main() -> None:
    user = postgres_user()
    for kind in ["sqlite", *(["postgres"] if user else [])]:
        report("node", node_schema, node_engine, kind, user)
        report("hub", hub_schema, hub_engine, kind, user)


if __name__ == "__main__":
    main()
