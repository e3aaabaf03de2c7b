"""`sauti node` commands end to end on a real home (SQLite by default)."""

import json

from typer.testing import CliRunner

from contracts import signing
from node.db import dispose_engines
from sauti.cli import app
from tests.node.conftest import HUB_ID, contract, frame, hub_signed, terms

runner = CliRunner()


def run(*args: str) -> str:
    result = runner.invoke(app, ["node", *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_node_cli_flow(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("NODE_DATABASE_URL", raising=False)
    home = str(tmp_path / "home")
    run("init", "--home", home, "--name", "Test CSO", "--country", "404")
    hub_key = signing.generate_key()
    (tmp_path / "hub.jwk").write_text(json.dumps(signing.public_jwk(hub_key)))
    run(
        "pin-hub",
        "--home",
        home,
        "--hub-id",
        HUB_ID,
        "--url",
        "http://hub.test",
        str(tmp_path / "hub.jwk"),
    )
    frame(50).write_csv(tmp_path / "survey.csv")
    (tmp_path / "contract.json").write_text(contract().model_dump_json())
    run(
        "import",
        "--home",
        home,
        "--dataset",
        "survey",
        str(tmp_path / "survey.csv"),
        "--contract",
        str(tmp_path / "contract.json"),
    )
    listed = json.loads(run("datasets", "--home", home, "--json"))
    assert (listed[0]["name"], listed[0]["version"], listed[0]["current"]) == ("survey", 1, True)

    agreement = hub_signed(terms("test-cso"), hub_key)
    (tmp_path / "mou.json").write_text(agreement.model_dump_json())
    run(
        "agreements",
        "sign",
        str(tmp_path / "mou.json"),
        "--home",
        home,
        "--out",
        str(tmp_path / "sig.json"),
    )
    assert json.loads((tmp_path / "sig.json").read_text())["signer"] == "test-cso"
    assert "mou-1" in run("agreements", "list", "--home", home)
    budget = json.loads(run("budget", "--home", home, "--json"))
    assert budget[0]["rho_remaining"] == "5"
    run("agreements", "revoke", "mou-1", "--home", home)
    assert "revoked" in run("agreements", "list", "--home", home)
    verified = runner.invoke(app, ["audit", "verify", "--home", home])
    assert verified.exit_code == 0, verified.output
    assert "verifies" in verified.output

    refused = runner.invoke(app, ["node", "agreements", "suspend", "mou-1", "--home", home])
    assert refused.exit_code == 1
    dispose_engines()
