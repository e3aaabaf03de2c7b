"""`sauti hub ...` and `sauti query` through the real command line entry point."""

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from hub_support import ANALYST_ORG, HUB_ID, RoutingTransport, SimNode, count_cell, make_terms
from typer.testing import CliRunner

from contracts.v1 import SignedAgreement
from hub.app import create_app
from hub.db import init_db, make_engine
from hub.exceptions import HubSetupError
from hub.home import check_database_file
from hub.nodes.service import register_node
from hub.settings import HubSettings
from sauti.cli import app
from sauti.serve import serve_in_thread

runner = CliRunner()


def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args), env=env)
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def served_hub(tmp_path: Path, db_url: str) -> Iterator[tuple[str, dict[str, str], SimNode]]:
    """A hub set up through the CLI, served on a real socket, with one simulated node."""
    home = str(tmp_path / "hub")
    code, out, _ = run("hub", "init", "--home", home, "--hub-id", HUB_ID)
    assert code == 0, out
    settings = HubSettings(home=Path(home), database_url=db_url)
    identity = json.loads((Path(home) / "hub.json").read_text())
    node = SimNode(
        node_id="ke-a",
        country="404",
        hub_key=identity["public_jwk"],
        cells={("female",): count_cell(("female",), 120.0), ("male",): count_cell(("male",), 3.0)},
    )
    tokens = {}
    env = {"HUB_DATABASE_URL": db_url}
    for role, org in (("analyst", ANALYST_ORG), ("secretariat", "sec")):
        code, out, err = run(
            "hub",
            "token",
            "create",
            "--home",
            home,
            "--name",
            role,
            "--org",
            org,
            "--role",
            role,
            env=env,
        )
        assert code == 0, err
        tokens[role] = out.strip()
    assert tokens["analyst"].startswith("sauti_")
    with serve_in_thread(
        create_app(settings, transport=RoutingTransport({node.host: node.transport()}))
    ) as server:
        yield server.url, tokens, node


def test_hub_cli_sets_up_agreements(tmp_path: Path) -> None:
    home = str(tmp_path / "hub")
    assert run("hub", "init", "--home", home, "--hub-id", HUB_ID)[0] == 0
    identity = json.loads((Path(home) / "hub.json").read_text())
    node = SimNode(node_id="ke-a", country="404", hub_key=identity["public_jwk"])
    # `nodes add` (over HTTP) is covered with a real node; here the registry is filled directly.
    engine = make_engine(f"sqlite:///{home}/hub.sqlite")
    with init_db(engine)() as session:
        register_node(session=session, actor="test", **node.registration())
    engine.dispose()
    code, out, _ = run("hub", "nodes", "list", "--home", home)
    assert code == 0
    assert out.startswith("ke-a\t404\t")

    terms_file = tmp_path / "terms.json"
    terms_file.write_text(make_terms([node]).model_dump_json())
    code, out, err = run("hub", "agreements", "create", "--home", home, str(terms_file))
    assert code == 0, err
    signed = SignedAgreement.model_validate(json.loads(out)["agreement"])
    signature = node.sign_agreement(signed.terms.agreement_id, 1, signed.digest)
    sig_file = tmp_path / "sig.json"
    sig_file.write_text(signature.model_dump_json())
    code, out, err = run("hub", "agreements", "add-signature", "--home", home, str(sig_file))
    assert code == 0, err
    assert out.strip() == "lnob-2026 v1: active"
    code, out, _ = run("hub", "agreements", "list", "--home", home)
    assert out.startswith("lnob-2026\tv1\tactive\t")

    code, _, err = run("hub", "agreements", "create", "--home", home, str(terms_file))
    assert code == 1
    assert "agreement_version_exists" in err
    terms_file.write_text('{"agreement_id": "Bad Id!"}')
    code, _, err = run("hub", "agreements", "create", "--home", home, str(terms_file))
    assert code == 1
    assert "Bad Id!" not in err
    code, _, _ = run(
        "hub", "token", "create", "--home", home, "--name", "x", "--org", "y", "--role", "emperor"
    )
    assert code == 1


def test_query_command(served_hub: tuple[str, dict[str, str], SimNode], tmp_path: Path) -> None:
    url, tokens, node = served_hub
    # Agreement set up over the API, as the secretariat would.
    sec = {"Authorization": f"Bearer {tokens['secretariat']}"}
    with httpx.Client(base_url=url, headers=sec) as client:
        assert client.post("/v1/nodes", json=node.registration()).status_code == 201
        terms = make_terms([node])
        created = client.post("/v1/agreements", json=terms.model_dump(mode="json"))
        digest = created.json()["agreement"]["digest"]
        signature = node.sign_agreement(terms.agreement_id, 1, digest)
        signed = client.post(
            f"/v1/agreements/{terms.agreement_id}/signatures",
            json=signature.model_dump(mode="json"),
        )
        assert signed.json()["status"] == "active"

    base = ["query", "--hub", url, "--agreement", "lnob-2026", "--dataset", "lnob_household"]
    env = {"SAUTI_TOKEN": tokens["analyst"]}
    code, out, err = run(
        *base,
        "--measure",
        "count",
        "--by",
        "sex,country",
        "--rho",
        "0.2",
        "--format",
        "csv",
        env=env,
    )
    assert code == 0, err
    assert "female" in out
    assert "suppressed" in out  # 3 is below the agreement's minimum cell size
    code, out, err = run(
        *base, "--measure", "count", "--by", "sex", "--rho", "0.2", "--format", "json", env=env
    )
    assert code == 0, err
    assert json.loads(out)["status"] == "complete"

    code, _, err = run(*base, "--measure", "count", "--rho", "0.9", env=env)
    assert code == 1
    assert err.strip().startswith("error: cost_over_cap:")
    assert len(err.strip().splitlines()) == 1
    code, _, err = run(*base, "--measure", "count", "--rho", "0.2", "--token", "wrong")
    assert code == 1
    assert "unauthenticated" in err
    node.script = ["refuse"]
    code, _, err = run(*base, "--measure", "count", "--rho", "0.2", env=env)
    assert code == 1
    assert "query_failed" in err
    code, _, _ = run(*base, "--measure", "share", "--rho", "0.2", env=env)
    assert code == 2
    code, _, _ = run(*base, "--measure", "count", "--rho", "0.2", "--where", "sexfemale", env=env)
    assert code == 2


@pytest.mark.parametrize("made", [False, True], ids=["missing", "empty"])
def test_a_hub_command_without_a_hub_home_says_how_to_make_one(tmp_path: Path, made: bool) -> None:
    """A usage error naming the home and `sauti hub init`, nothing created in it: never a
    raw SQLite error (missing folder) nor a quietly created empty hub (empty folder). The
    command line checks `--home` (and SAUTI_HOME) first; `hub.home.check_database_file`
    is the same rule where a hub opens its database without a command line."""
    home = tmp_path / "hub"
    if made:
        home.mkdir()
    for args in (
        ("hub", "nodes", "list"),
        ("hub", "agreements", "list"),
        ("hub", "token", "list"),
        ("hub", "org", "list"),
        ("hub", "modules", "coverage", "lnob-core"),
    ):
        ways: list[tuple[tuple[str, ...], dict[str, str] | None]] = [
            (("--home", str(home)), None),
            ((), {"SAUTI_HOME": str(home)}),
        ]
        for argv, env in ways:
            code, out, err = run(*args, *argv, env=env)
            assert (code, out) == (2, ""), (args, err)
            assert f"sauti hub init --home {home}" in err, (args, err)
            assert "Traceback" not in err
    assert not home.exists() or list(home.iterdir()) == []
    why = "no hub.json" if made else "the folder does not exist"
    with pytest.raises(HubSetupError, match=f"no hub home at {home} \\({why}\\)"):
        check_database_file(home / "hub.sqlite")


def test_hub_init_still_makes_its_database_even_outside_the_home(tmp_path: Path) -> None:
    elsewhere = tmp_path / "db" / "secretariat.sqlite"
    elsewhere.parent.mkdir()
    env = {"HUB_DATABASE_URL": f"sqlite:///{elsewhere}"}
    home = str(tmp_path / "hub")
    assert run("hub", "init", "--home", home, env=env)[0] == 0
    assert elsewhere.exists()
    assert run("hub", "nodes", "list", "--home", home, env=env)[0] == 0
    assert run("hub", "init", "--home", str(tmp_path / "own"))[0] == 0
    assert (tmp_path / "own" / "hub.sqlite").exists()
