"""Alembic migrations of hub and node: empty -> head -> empty, models match, start-up policy."""

import hashlib
import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect, text
from typer.testing import CliRunner

from hub.db import SCHEMA as hub_schema
from hub.db import make_engine as hub_engine
from hub.exceptions import SchemaOutOfDate as HubSchemaOutOfDate
from node.db import SCHEMA as node_schema
from node.db import make_engine as node_engine
from node.exceptions import SchemaOutOfDate as NodeSchemaOutOfDate
from runtime.migrations import Schema
from sauti.cli import app as cli

ROOT = Path(__file__).parents[2]
FROZEN_0001 = {
    "hub": "c5a0c02418e821a562b7f0481c3cbb69a5dc2a1dc2d13c8dacf6967c5a6e2cad",
    "node": "b4a479fd36160c5a66e86b93d3d447126ad8210a1bf9227895926c07d5c91c64",
}

APPS = {
    "hub": (hub_schema, hub_engine, HubSchemaOutOfDate),
    "node": (node_schema, node_engine, NodeSchemaOutOfDate),
}


@pytest.fixture(params=sorted(APPS))
def app(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
def engine(app: str, db_url: str) -> Iterator[Engine]:
    made = APPS[app][1](db_url)
    yield made
    made.dispose()


def schema_of(app: str) -> Schema:
    return APPS[app][0]


def tables(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names()) - {"alembic_version"}


def diff(engine: Engine, app: str) -> list[object]:
    with engine.connect() as conn:
        return list(compare_metadata(MigrationContext.configure(conn), schema_of(app).metadata()))


def test_every_migration_up_and_down_and_models_match(app: str, engine: Engine) -> None:
    schema = schema_of(app)
    assert schema.migrate(engine) == (None, schema.head())
    assert diff(engine, app) == []
    assert tables(engine) == set(schema.metadata().tables)

    schema.downgrade(engine, "base")
    assert tables(engine) == set()
    assert schema.state(engine) == (None, schema.head())

    assert schema.migrate(engine) == (None, schema.head())
    assert diff(engine, app) == []
    assert schema.migrate(engine) == (schema.head(), schema.head())  # a no-op the second time


def test_start_up_builds_an_empty_database_at_head(app: str, engine: Engine) -> None:
    schema = schema_of(app)
    schema.ensure_schema(engine, upgrade=False)
    assert schema.state(engine) == (schema.head(), schema.head())
    assert diff(engine, app) == []
    schema.ensure_schema(engine, upgrade=False)  # at head: nothing to do


def test_start_up_refuses_an_old_schema_unless_allowed(
    app: str, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    schema = schema_of(app)
    schema.migrate(engine)
    # A later release would ship a newer revision; its head is what the code then asks for.
    monkeypatch.setattr(schema, "head", lambda: "9000")
    with pytest.raises(APPS[app][2], match=f"sauti {app} migrate"):
        schema.ensure_schema(engine, upgrade=False)


def test_start_up_refuses_a_schema_newer_than_the_code(app: str, engine: Engine) -> None:
    schema = schema_of(app)
    schema.migrate(engine)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    for upgrade in (False, True):
        with pytest.raises(APPS[app][2], match="does not know"):
            schema.ensure_schema(engine, upgrade=upgrade)


def test_tables_without_history_are_adopted_only_by_migrate(app: str, engine: Engine) -> None:
    schema = schema_of(app)
    schema.metadata().create_all(engine)  # a database from before migrations existed
    with pytest.raises(APPS[app][2], match="no migration history"):
        schema.ensure_schema(engine, upgrade=True)
    assert schema.migrate(engine) == (None, schema.head())
    schema.ensure_schema(engine, upgrade=False)


def test_migrate_refuses_to_adopt_tables_that_differ(app: str, engine: Engine) -> None:
    schema = schema_of(app)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE stray (id INTEGER PRIMARY KEY)"))
    with pytest.raises(APPS[app][2], match="differ"):
        schema.migrate(engine)


def test_revision_0001_is_frozen() -> None:
    """0001 landed on 2026-11-27: schema changes since then are new revisions, never edits."""
    for app in ("hub", "node"):
        text = (ROOT / app / "migrations" / "versions" / "0001_initial.py").read_text()
        assert hashlib.sha256(text.encode()).hexdigest() == FROZEN_0001[app], app


def test_cli_migrate_status_and_upgrade(tmp_path: Path) -> None:
    runner = CliRunner()
    node_home, hub_home = tmp_path / "node", tmp_path / "hub"
    assert (
        runner.invoke(
            cli, ["node", "init", "--home", str(node_home), "--name", "N", "--country", "524"]
        ).exit_code
        == 0
    )
    missing = runner.invoke(cli, ["hub", "migrate", "--home", str(hub_home)])
    assert missing.exit_code == 1
    assert "cannot open the hub database" in missing.output
    hub_home.mkdir()
    for role, home in (("node", node_home), ("hub", hub_home)):
        status = runner.invoke(cli, [role, "migrate", "--home", str(home), "--status"])
        assert status.exit_code == 1
        assert "database revision none" in status.output
        done = runner.invoke(cli, [role, "migrate", "--home", str(home)])
        assert done.exit_code == 0, done.output
        assert "migrated from revision none" in done.output
        again = runner.invoke(cli, [role, "migrate", "--home", str(home), "--status"])
        assert again.exit_code == 0
        assert "already at" in runner.invoke(cli, [role, "migrate", "--home", str(home)]).output


@pytest.mark.parametrize("app", ["hub"])
def test_hub_0004_moves_pinned_keys_into_the_key_history(engine: Engine) -> None:
    hub_schema.migrate(engine)
    hub_schema.downgrade(engine, "0003")
    jwk = {"kty": "OKP", "crv": "Ed25519", "x": "AAAA"}
    old = {"kty": "OKP", "crv": "Ed25519", "x": "BBBB"}
    insert = text(
        "INSERT INTO nodes (node_id, name, country, url, public_jwk, kid, registered_at, mode,"
        " status, previous_jwk, previous_kid, previous_valid_until) VALUES (:id, 'N', '524', '',"
        " :jwk, :kid, '2026-01-01 00:00:00+00:00', 'pull', 'active', :old, :old_kid, :until)"
    )
    with engine.begin() as conn:
        conn.execute(
            insert,
            [
                {
                    "id": "one",
                    "jwk": json.dumps(jwk),
                    "kid": "k1",
                    "old": None,
                    "old_kid": None,
                    "until": None,
                },
                {
                    "id": "two",
                    "jwk": json.dumps(jwk),
                    "kid": "k3",
                    "old": json.dumps(old),
                    "old_kid": "k2",
                    "until": "2026-02-01 00:00:00+00:00",
                },
            ],
        )
    assert hub_schema.migrate(engine) == ("0003", hub_schema.head())
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT node_id, kid, valid_from IS NULL, retired_at IS NULL, valid_until IS NULL"
                " FROM node_keys ORDER BY node_id, kid"
            )
        ).all()
    assert [tuple(r) for r in rows] == [
        ("one", "k1", False, True, True),
        ("two", "k2", False, False, False),
        ("two", "k3", True, True, True),
    ]


@pytest.mark.parametrize("app", ["node"])
def test_node_0003_turns_float_budgets_into_exact_decimals(engine: Engine) -> None:
    node_schema.migrate(engine)
    node_schema.downgrade(engine, "0002")
    charge = text(
        "INSERT INTO budget_charges (query_id, agreement_id, version, rho, charged_at, period,"
        " dataset, measure, group_by) VALUES (:q, :a, 1, :rho, '2026-01-01 00:00:00+00:00',"
        " 'validity', 'survey', 'count', '[]')"
    )
    with engine.begin() as conn:
        conn.execute(charge, [{"q": f"q{i}", "a": "mou", "rho": 0.01} for i in range(37)])
        # Charges made before per-charge rows existed: the running total keeps them.
        conn.execute(charge, [{"q": "old", "a": "legacy", "rho": 0.2}])
        conn.execute(
            text("INSERT INTO budgets (agreement_id, rho_spent, queries) VALUES (:a, :s, :n)"),
            [
                {"a": "mou", "s": sum([0.01] * 37), "n": 37},  # 0.37000000000000016
                {"a": "legacy", "s": 0.5, "n": 3},
            ],
        )
        conn.execute(
            text(
                "INSERT INTO releases (query_id, agreement_id, request_digest, rho, created_at)"
                " VALUES ('r', 'mou', 'd', :rho, '2026-01-01T00:00:00+00:00')"
            ),
            {"rho": 0.0123456789012345},
        )
    assert node_schema.migrate(engine) == ("0002", node_schema.head())
    with engine.connect() as conn:
        spent = dict(conn.execute(text("SELECT agreement_id, rho_spent FROM budgets")).all())
        charges = {str(r) for (r,) in conn.execute(text("SELECT rho FROM budget_charges"))}
        release = conn.execute(text("SELECT rho FROM releases")).scalar_one()
    assert {k: Decimal(str(v)) for k, v in spent.items()} == {
        "mou": Decimal("0.37"),
        "legacy": Decimal("0.5"),
    }
    assert charges == {"0.01", "0.2"}
    # 17 significant digits survive (both databases' own casts keep only 15).
    assert Decimal(str(release)) == Decimal("0.0123456789012345")
    node_schema.downgrade(engine, "0001")
    with engine.connect() as conn:
        assert conn.execute(text("SELECT rho FROM releases")).scalar_one() == 0.0123456789012345
