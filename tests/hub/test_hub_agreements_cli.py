"""`sauti hub agreements draft|propose|versions|show|suspend|revoke|document` on a hub home."""

from pathlib import Path

from hub_support import SimNode, make_terms
from typer.testing import CliRunner

from hub.db import init_db, make_engine
from hub.home import HubIdentity
from hub.nodes import service as federation
from hub.settings import HubSettings
from sauti.cli import app

runner = CliRunner()


def test_hub_agreements_commands(tmp_path: Path, hub_home: HubIdentity, monkeypatch) -> None:
    monkeypatch.delenv("HUB_DATABASE_URL", raising=False)
    home = tmp_path / "hub"
    node = SimNode(node_id="ke-a", country="404", hub_key=hub_home.public_jwk)
    engine = make_engine(HubSettings(home=home).effective_database_url)
    with init_db(engine)() as session:
        federation.register_node(session=session, **node.registration())
    engine.dispose()
    (tmp_path / "terms.json").write_text(make_terms([node]).model_dump_json())

    def run(*args: str, code: int = 0) -> str:
        result = runner.invoke(app, ["hub", "agreements", *args, "--home", str(home)])
        assert result.exit_code == code, result.output
        return result.output

    assert "\tdraft\t" in run("draft", str(tmp_path / "terms.json"))
    assert "\tdraft\t" in run("update", str(tmp_path / "terms.json"))
    assert "waiting for: ke-a" in run("propose", "lnob-2026", "1")
    assert "agreement_not_draft" in run("propose", "lnob-2026", "1", code=1)
    shown = run("show", "lnob-2026")
    assert "WHO MAY ASK" in shown
    assert '"digest"' in run("show", "lnob-2026", "--json")
    assert "v1\tproposed" in run("versions", "lnob-2026")
    run("document", "lnob-2026", "--out", str(tmp_path / "mou.html"))
    assert "LNOB data sharing" in (tmp_path / "mou.html").read_text()
    run("document", "lnob-2026", "--out", str(tmp_path / "mou.pdf"))
    assert (tmp_path / "mou.pdf").read_bytes().startswith(b"%PDF")
    assert "must end in" in run("document", "lnob-2026", "--out", str(tmp_path / "x.doc"), code=1)
    assert "\tsuspended\t" in run("suspend", "lnob-2026", "--reason", "review")
    assert "\trevoked\t" in run("revoke", "lnob-2026")
    assert "agreement_revoked" in run("resume", "lnob-2026", code=1)
    assert "agreement_not_found" in run("show", "nope", code=1)
