"""`sauti hub org|user|token` and `sauti node steward`: secrets printed once, bad input exit 1."""

from pathlib import Path

from typer.testing import CliRunner

from hub.home import init_home as init_hub
from node.db import dispose_engines
from node.home import init_home as init_node
from sauti.cli import app

runner = CliRunner()


def run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_hub_accounts_from_the_command_line(tmp_path: Path) -> None:
    home = str(tmp_path / "hub")
    init_hub(tmp_path / "hub", hub_id="cli-hub")
    h = ("--home", home)
    assert (
        run("hub", "org", "add", "knbs", "--name", "KNBS", "--kind", "nso", "--country", "404", *h)[
            0
        ]
        == 0
    )
    code, _, err = run("hub", "org", "add", "x", "--name", "X", "--kind", "church", *h)
    assert code == 1
    assert "invalid_request" in err
    code, out, _ = run("hub", "user", "add", "wanjiru", "--org", "knbs", "--role", "analyst", *h)
    assert code == 0
    initial = out.strip()
    assert len(initial) >= 12
    code, _, err = run("hub", "user", "add", "x", "--org", "knbs", "--role", "king", *h)
    assert (code, "role_unknown" in err) == (1, True)
    code, _, err = run("hub", "user", "add", "wanjiru", "--org", "knbs", *h)
    assert (code, "user_exists" in err) == (1, True)
    code, out, _ = run(
        "hub", "token", "create", "--user", "wanjiru", "--role", "analyst", "--name", "nb", *h
    )
    assert code == 0
    assert out.strip().startswith("sauti_")
    code, _, err = run(
        "hub", "token", "create", "--user", "wanjiru", "--role", "admin", "--name", "x", *h
    )
    assert (code, "scope_invalid" in err) == (1, True)
    # The legacy form still works: a service account of the organisation.
    code, out, _ = run(
        "hub", "token", "create", "--name", "bot", "--org", "knbs", "--role", "analyst", *h
    )
    assert (code, out.startswith("sauti_")) == (0, True)
    code, out, _ = run("hub", "token", "list", *h)
    assert "wanjiru" in out
    assert "sauti_" not in out
    assert run("hub", "token", "revoke", "1", *h)[0] == 0
    assert run("hub", "token", "revoke", "99", *h)[0] == 1
    assert run("hub", "user", "grant", "wanjiru", "steward:ke-a", *h)[0] == 0
    code, out, _ = run("hub", "user", "list", *h)
    assert "node:ke-a" in out
    code, out, _ = run("hub", "user", "reset-password", "wanjiru", *h)
    assert code == 0
    assert out.strip() != initial
    assert run("hub", "user", "unlock", "nobody", *h)[0] == 1


def test_node_stewards_from_the_command_line(tmp_path: Path) -> None:
    home = tmp_path / "node"
    init_node(home, name="CSO", country="524")
    h = ("--home", str(home))
    try:
        code, out, _ = run("node", "steward", "add", "sita", *h)
        assert code == 0
        assert len(out.strip()) >= 12
        assert run("node", "steward", "add", "sita", *h)[0] == 1
        assert run("node", "steward", "unlock", "sita", *h)[0] == 0
        assert run("node", "steward", "disable", "nobody", *h)[0] == 1
        code, out, _ = run("node", "steward", "list", *h)
        assert "must-change-password" in out
        assert run("node", "token", "create", "--name", "x", "--expires-days", "2", *h)[0] == 0
    finally:
        dispose_engines()
