"""Backup and restore of a node home: the restored node verifies its chain and has its ledger."""

import io
import tarfile
from pathlib import Path

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from contracts import signing
from node import backup as node_backup
from node.db import dispose_engines, transaction
from node.exceptions import HomeError
from node.settings import NodeSettings
from sauti.cli import app as cli
from tests.node.conftest import Node, make_node

LEDGER_TABLES = ("budgets", "budget_charges", "releases", "agreements", "audit_log", "audit_head")


def dump(url: str) -> dict[str, list[tuple[object, ...]]]:
    with transaction(url) as session:
        return {
            t: [tuple(r) for r in session.execute(text(f"SELECT * FROM {t} ORDER BY 1"))]
            for t in LEDGER_TABLES
        }


def files(home: Path) -> dict[str, bytes]:
    return {
        p.relative_to(home).as_posix(): p.read_bytes()
        for p in sorted(home.rglob("*"))
        if p.is_file() and not p.name.startswith("node.sqlite")
    }


@pytest.fixture
def home_node(tmp_path: Path) -> Node:
    home = tmp_path / "node"
    # The database at its default place in the home, as `sauti node init` leaves it.
    return make_node(home, f"sqlite:///{home}/node.sqlite")


def test_backup_and_restore_round_trip(tmp_path: Path, home_node: Node) -> None:
    n = home_node
    request = n.request()
    first = n.post(request)
    assert first.status_code == 200
    assert n.post(n.request(n.spec(group_by=("district",)))).status_code == 200
    runner = CliRunner()
    archive = tmp_path / "backups" / "node.tar.gz"
    done = runner.invoke(cli, ["node", "backup", "--home", str(n.home), "--out", str(archive)])
    assert done.exit_code == 0, done.output
    assert archive.stat().st_mode & 0o077 == 0
    before = dump(n.settings.db_url)
    before_files = files(n.home)
    assert before["audit_log"][-1][3] == "node_backed_up"  # the backup logged itself

    restored = tmp_path / "restored"
    result = runner.invoke(cli, ["node", "restore", str(archive), "--home", str(restored)])
    assert result.exit_code == 0, result.output
    verify = runner.invoke(cli, ["audit", "verify", "--home", str(restored)])
    assert verify.exit_code == 0, verify.output
    settings = NodeSettings(home=restored)
    assert dump(settings.db_url) == before
    assert files(restored) == before_files
    assert (restored / "keys" / "node.jwk.json").stat().st_mode & 0o077 == 0

    # The restored node answers a retry from its stored release: same noise, no new charge.
    dispose_engines()
    from node.app import create_app  # noqa: PLC0415
    from tests.node.conftest import AppClient  # noqa: PLC0415

    again = AppClient(create_app(settings)).post(
        "/v1/queries", json={"jws": signing.sign(request, n.hub_key)}
    )
    assert again.status_code == 200
    assert again.json() == first.json()
    assert dump(settings.db_url)["budgets"] == before["budgets"]


def test_restore_refuses_an_existing_home_and_a_tampered_archive(
    tmp_path: Path, home_node: Node
) -> None:
    archive = tmp_path / "node.tar.gz"
    node_backup.backup(settings=home_node.settings, out=archive, actor="test")
    with pytest.raises(HomeError, match="already exists"):
        node_backup.restore(archive=archive, home=home_node.home)

    tampered = tmp_path / "tampered.tar.gz"
    with tarfile.open(archive) as src, tarfile.open(tampered, "w:gz") as dst:
        for member in src.getmembers():
            data = src.extractfile(member)
            if member.name == "node.json":
                body = data.read().replace(b"Test CSO", b"Evil CSO") if data else b""
                member.size = len(body)
                dst.addfile(member, io.BytesIO(body))
            else:
                dst.addfile(member, data)
    result = CliRunner().invoke(
        cli, ["node", "restore", str(tampered), "--home", str(tmp_path / "x")]
    )
    assert result.exit_code == 1
    assert "does not match" in result.output

    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"not an archive")
    with pytest.raises(HomeError, match="cannot be read"):
        node_backup.restore(archive=junk, home=tmp_path / "y")


def test_a_postgresql_node_is_told_to_use_pg_dump(tmp_path: Path, postgres_url: str) -> None:
    n = make_node(tmp_path / "pg", postgres_url)
    with pytest.raises(HomeError, match="pg_dump"):
        node_backup.backup(settings=n.settings, out=tmp_path / "b.tar.gz", actor="test")
    count = node_backup.backup(
        settings=n.settings, out=tmp_path / "b.tar.gz", actor="test", include_database=False
    )
    assert count >= 3
    dispose_engines()
