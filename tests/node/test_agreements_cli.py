"""`sauti node agreements ...` on a real node home: review, sign, suspend, budget, report."""

import json
from pathlib import Path

from typer.testing import CliRunner

from node.db import dispose_engines
from sauti.cli import app
from tests.node.conftest import hub_signed, make_node, terms

runner = CliRunner()


def test_node_agreements_commands(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("NODE_DATABASE_URL", raising=False)
    n = make_node(tmp_path / "n", f"sqlite:///{tmp_path}/n/node.sqlite")
    home = str(n.home)
    v2 = hub_signed(
        terms(n.identity.node_id, agreement_id="mou-2", budget_period="quarter"), n.hub_key
    )
    (tmp_path / "mou.json").write_text(v2.model_dump_json())

    def run(*args: str, code: int = 0) -> str:
        result = runner.invoke(app, ["node", "agreements", *args, "--home", home])
        assert result.exit_code == code, result.output
        return result.output

    signed = run("sign", str(tmp_path / "mou.json"), "--yes", "--out", str(tmp_path / "sig.json"))
    assert "WHO MAY ASK" in signed
    assert "for each calendar quarter" in signed
    assert json.loads((tmp_path / "sig.json").read_text())["signer"] == n.identity.node_id
    assert "already signed" in run("sign", str(tmp_path / "mou.json"), "--yes")
    assert "no-such-id" not in run("list")
    shown = run("show", "mou-2")
    assert "PRIVACY BUDGET" in shown
    unknown = run("sign", "no-such-id", code=1)
    assert "hub_unreachable" in unknown
    assert n.post(n.request()).status_code == 200
    budget = run("budget", "mou-1")
    assert "NSO Nepal" in budget
    assert "count" in budget
    lines = json.loads(run("budget", "--json"))
    assert [(ln["agreement_id"], ln["period"]) for ln in lines] == [
        ("mou-1", "validity"),
        ("mou-2", lines[1]["period"]),
    ]
    assert lines[1]["period"].split("-Q")[1] in {"1", "2", "3", "4"}
    suspended = run("suspend", "mou-1", "--reason", "review")
    assert "in force at this node" in suspended
    assert "not told yet" in suspended
    assert "already suspended" in run("suspend", "mou-1")
    assert n.post(n.request()).json()["error"]["code"] == "agreement_suspended"
    run("resume", "mou-1")
    run("revoke", "mou-1")
    assert "agreement_revoked" in run("resume", "mou-1", code=1)
    assert "retries" in run("report", code=1)
    dispose_engines()
