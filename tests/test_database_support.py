"""A recycled test database holds what a fresh clone of its template holds, or is dropped."""

import psycopg
import pytest
from database_support import PostgresDatabases, fingerprint

from hub.auth.tokens import create_token
from hub.db import init_db, make_engine


def _state(databases: PostgresDatabases, name: str) -> dict[str, object]:
    """Everything a test could read back: schema, rows, sequences and table file sizes."""
    with psycopg.connect(databases.dsn(name), autocommit=True) as conn:
        tables = [
            t
            for (t,) in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        ]
        state: dict[str, object] = {"schema": fingerprint(conn)}
        for table in tables:
            rows = conn.execute(f'SELECT * FROM "{table}"').fetchall()
            state[table] = sorted(map(repr, rows))
            size = conn.execute("SELECT pg_relation_size(%s::regclass)", (f'"{table}"',))
            state[f"{table} bytes"] = size.fetchone()
        sequences = conn.execute(
            "SELECT sequencename FROM pg_sequences WHERE schemaname = 'public'"
        )
        for (sequence,) in sequences.fetchall():
            row = conn.execute(f'SELECT last_value, is_called FROM "{sequence}"').fetchone()
            state[f"{sequence} sequence"] = row
    return state


def test_a_used_database_is_recycled_to_what_a_fresh_clone_holds(
    postgres_databases: PostgresDatabases,
) -> None:
    name = postgres_databases.create("hub")
    fresh = _state(postgres_databases, name)
    engine = make_engine(postgres_databases.url(name))
    try:
        with init_db(engine)() as session:  # rows in several tables, sequences moved on
            for role in ("admin", "analyst", "auditor"):
                create_token(session=session, name=role, organisation="org", role=role)
    finally:
        engine.dispose()
    with psycopg.connect(postgres_databases.dsn(name), autocommit=True) as conn:
        conn.execute("UPDATE alembic_version SET version_num = 'changed'")
        # A connection the test leaves open is ended, as dropping the database would.
        held = psycopg.connect(postgres_databases.dsn(name))
        held.execute("SELECT 1 FROM alembic_version FOR UPDATE")
    assert _state(postgres_databases, name) != fresh

    postgres_databases.release(name)
    postgres_databases.settle()
    held.close()

    assert name in postgres_databases.spares("hub")
    assert _state(postgres_databases, name) == fresh
    # The next test takes it under a name of its own.
    spares = postgres_databases.spares("hub")
    taken = [postgres_databases.create("hub") for _ in spares]
    assert name not in postgres_databases.spares("hub")
    for other in taken:
        assert _state(postgres_databases, other) == fresh
        postgres_databases.release(other)


@pytest.mark.parametrize("change", ["CREATE TABLE extra (x int)", "ALTER TABLE users ADD x int"])
def test_a_database_whose_schema_changed_is_dropped(
    postgres_databases: PostgresDatabases, change: str
) -> None:
    name = postgres_databases.create("hub")
    with psycopg.connect(postgres_databases.dsn(name), autocommit=True) as conn:
        conn.execute(change)
    postgres_databases.release(name)
    postgres_databases.settle()
    assert name not in postgres_databases.spares("hub")
    with psycopg.connect(postgres_databases.admin_dsn) as conn:
        found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchall()
    assert found == []


def test_an_empty_database_is_dropped_after_its_test(
    postgres_databases: PostgresDatabases,
) -> None:
    name = postgres_databases.create(None)
    postgres_databases.release(name)
    postgres_databases.settle()
    with psycopg.connect(postgres_databases.admin_dsn) as conn:
        found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchall()
    assert found == []
