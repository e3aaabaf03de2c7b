"""The node-only and hub-only installs (packaging/, requirements-node.lock, requirements-hub.lock).

The quick checks read the pyproject files, the locks and the import graph: each side's lock
pins the full lock's versions of what its packages import, and nothing of the other side's.
The slow ones build each install in a fresh virtualenv with the repository's pinned uv (from
its cache, offline when the cache holds everything; else from the registry), once per module,
look for what must not be there, and run `sauti node` from the node install end to end: init,
import, enrolment, signature and `node serve`, answering a query of a hub from the full install;
then each install verifies its own side's audit log and refuses the other side's home.
"""

import importlib.metadata
import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import grimp
import httpx
import pytest
from typer.testing import CliRunner

from hub import home as hub_home
from hub.app import create_app as create_hub_app
from hub.auth.tokens import create_token
from hub.db import init_db, make_engine
from hub.settings import HubSettings
from sauti.cli import app as full_cli
from sauti.demo.data import demo_nodes
from sauti.demo.run import ANALYST_ORG, SECRETARIAT, demo_terms
from sauti.serve import serve_in_thread
from tests.e2e.federation_procs import free_port, process, wait_healthy

ROOT = Path(__file__).resolve().parents[2]
UV = ROOT / ".tools" / "bin" / "uv"
SIDES = ("node", "hub")
# What one side's install must not hold: the other side's code and heavy libraries.
ABSENT = {
    "node": ("hub", "weasyprint", "celery", "authlib", "kombu", "fontpkg_noto_sans"),
    "hub": ("node", "opendp", "polars", "pyarrow"),
}
ABSENT_DISTRIBUTIONS = {
    "node": {"weasyprint", "celery", "authlib", "kombu", "fontpkg-noto-sans"},
    "hub": {"opendp", "polars", "pyarrow"},
}
PACKAGES = {"node": ("contracts", "runtime", "node"), "hub": ("contracts", "runtime", "hub")}
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", re.MULTILINE)


def normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(lock: str) -> dict[str, str]:
    return {normal(n): v for n, v in PIN.findall((ROOT / lock).read_text())}


def pyproject(side: str | None = None) -> dict[str, Any]:
    path = ROOT / "pyproject.toml" if side is None else ROOT / "packaging" / f"sauti-{side}"
    return tomllib.loads((path if side is None else path / "pyproject.toml").read_text())


def requirement_name(requirement: str) -> str:
    return normal(re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0])


def test_the_two_sides_depend_on_what_the_full_install_does() -> None:
    full = set(pyproject()["project"]["dependencies"])
    split = {side: set(pyproject(side)["project"]["dependencies"]) for side in SIDES}
    assert split["node"] | split["hub"] == full  # same names, same bounds
    for side in SIDES:
        names = {requirement_name(r) for r in split[side]}
        assert not names & ABSENT_DISTRIBUTIONS[side], side


@pytest.mark.parametrize("side", SIDES)
def test_each_lock_pins_the_full_locks_versions_and_nothing_of_the_other_side(side: str) -> None:
    full, own = pins("requirements.lock"), pins(f"requirements-{side}.lock")
    assert {name: full.get(name) for name in own} == own
    declared = {requirement_name(r) for r in pyproject(side)["project"]["dependencies"]}
    assert declared <= set(own), "run `make lock`"
    assert not set(own) & ABSENT_DISTRIBUTIONS[side]
    assert "--hash=sha256:" in (ROOT / f"requirements-{side}.lock").read_text()


@pytest.mark.parametrize("side", SIDES)
def test_each_lock_pins_what_its_packages_import(side: str) -> None:
    graph = grimp.build_graph(*PACKAGES[side], include_external_packages=True)
    imported = {
        target.split(".")[0]
        for module in graph.modules
        if module.split(".")[0] in PACKAGES[side]
        for target in graph.find_modules_directly_imported_by(module)
    }
    third_party = imported - set(PACKAGES[side]) - set(sys.stdlib_module_names)
    distributions = importlib.metadata.packages_distributions()
    own = pins(f"requirements-{side}.lock")
    missing = {m for m in third_party if not {normal(d) for d in distributions[m]} & set(own)}
    assert not missing, f"imported by {side} but not in requirements-{side}.lock: {missing}"


def build_install(side: str, folder: Path) -> Path:
    """A fresh virtualenv with one side's lock and its wheel; the uv cache offline if it can."""
    assert UV.is_file(), "the pinned uv is missing: run `make .venv/.synced-stamp`"
    python = folder / "bin" / "python"
    subprocess.run(
        [UV, "venv", "--quiet", "--python", sys.executable, folder], check=True, cwd=folder.parent
    )
    steps: list[list[str | Path]] = [
        ["--require-hashes", "-r", ROOT / f"requirements-{side}.lock"],
        ["--no-deps", ROOT / "packaging" / f"sauti-{side}"],
    ]
    for step in steps:
        network: list[str]
        for network in (["--offline"], []):  # the registry only if the cache lacks a file
            done = subprocess.run(
                [UV, "pip", "install", "--quiet", "--python", python, *network, *step],
                cwd=folder.parent,
                capture_output=True,
                check=False,
                text=True,
            )
            if done.returncode == 0:
                break
        assert done.returncode == 0, done.stderr
    return folder


@pytest.fixture(scope="module")
def installs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    work = tmp_path_factory.mktemp("installs")
    return {side: build_install(side, work / side) for side in SIDES}


def run_in(venv: Path, *args: str | Path, cwd: Path, check: bool = True) -> str:
    """A command of the install at `venv`, outside the repository and without PYTHONPATH."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(
        [venv / "bin" / args[0], *args[1:]],
        cwd=cwd,
        check=False,
        env={**env, "POLARS_MAX_THREADS": "2"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0 or not check, f"{args}: {done.stdout}{done.stderr}"
    return done.stdout


# Walks the install's own `sauti` command: every sub-command's --help, and what was imported.
HELP_EVERYWHERE = """
import importlib.metadata, json, sys
import typer.main
from typer.testing import CliRunner
(entry,) = importlib.metadata.entry_points(group="console_scripts", name="sauti")
app = entry.load()

def paths(command, prefix, ctx):
    yield prefix
    if hasattr(command, "list_commands"):
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            sub_ctx = sub.context_class(sub, parent=ctx, info_name=name)
            yield from paths(sub, [*prefix, name], sub_ctx)

failed = {}
names = []
root = typer.main.get_command(app)
for path in list(paths(root, [], root.context_class(root, info_name="sauti"))):
    result = CliRunner().invoke(app, [*path, "--help"])
    names.append(" ".join(path))
    if result.exit_code != 0:
        failed[" ".join(path)] = result.output
print(json.dumps({"commands": names, "failed": failed, "modules": sorted(sys.modules)}))
"""


@pytest.mark.e2e
@pytest.mark.parametrize("side", SIDES)
def test_an_install_holds_its_side_only_and_every_command_works(
    side: str, installs: dict[str, Path], tmp_path: Path
) -> None:
    venv = installs[side]
    found = run_in(
        venv,
        "python",
        "-c",
        f"import importlib.util as u; print([m for m in {ABSENT[side]!r} if u.find_spec(m)])",
        cwd=tmp_path,
    )
    assert found.strip() == "[]"
    frozen = subprocess.run(
        [UV, "pip", "freeze", "--python", venv / "bin" / "python"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    names = {requirement_name(line) for line in frozen.splitlines() if line}
    assert names == set(pins(f"requirements-{side}.lock")) | {f"sauti-{side}"}

    report = json.loads(run_in(venv, "python", "-c", HELP_EVERYWHERE, cwd=tmp_path))
    assert not report["failed"], report["failed"]
    top = {c.split()[0] for c in report["commands"] if c}
    assert side in top
    assert ({"hub"} if side == "node" else {"node", "demo"}).isdisjoint(top)
    assert len(report["commands"]) > 10


@pytest.mark.e2e
def test_a_node_from_the_node_install_answers_a_hub_from_the_full_install(
    installs: dict[str, Path], tmp_path: Path
) -> None:
    node_venv = installs["node"]
    demo = demo_nodes(rows=400)[0]
    hub_dir, home = tmp_path / "hub", tmp_path / "node"
    identity = hub_home.init_home(hub_dir, hub_id="split-hub")
    settings = HubSettings(home=hub_dir, session_cookie_secure=False)
    engine = make_engine(settings.effective_database_url)
    try:
        with init_db(engine)() as session:
            secretariat, analyst = (
                create_token(session=session, name=role, organisation=org, role=role)
                for role, org in (("secretariat", SECRETARIAT), ("analyst", ANALYST_ORG))
            )
    finally:
        engine.dispose()

    export, contract = tmp_path / "export.csv", tmp_path / "contract.json"
    demo.frame.write_csv(export)
    contract.write_text(demo.contract.model_dump_json())
    node = (
        "sauti",
        "node",
    )
    with (
        serve_in_thread(create_hub_app(settings)) as hub,
        httpx.Client(base_url=hub.url, timeout=60) as client,
    ):
        run_in(node_venv, *node, "init", "--home", home, "--name", demo.organisation,
               "--country", demo.country, "--node-id", demo.node_id, cwd=tmp_path)  # fmt: skip
        run_in(node_venv, *node, "import", export, "--home", home, "--dataset",
               demo.contract.name, "--contract", contract, cwd=tmp_path)  # fmt: skip
        token = CliRunner().invoke(
            full_cli,
            ["hub", "enroll-token", "create", "--home", str(hub_dir), "--node-id", demo.node_id],
        )
        assert token.exit_code == 0, token.output
        port = free_port()
        run_in(node_venv, *node, "enroll", "--home", home, "--hub", hub.url, "--token",
               token.stdout.strip(), "--mode", "push", "--url", f"http://127.0.0.1:{port}",
               cwd=tmp_path)  # fmt: skip

        sec = {"Authorization": f"Bearer {secretariat}"}
        terms = demo_terms(nodes=[demo], hub_id=identity.hub_id)
        drafted = client.post(
            "/v1/agreements/drafts", json=terms.model_dump(mode="json"), headers=sec
        )
        assert drafted.status_code == 201, drafted.text
        proposed = client.post(
            f"/v1/agreements/{terms.agreement_id}/versions/{terms.version}/propose", headers=sec
        )
        assert proposed.status_code in (200, 201), proposed.text
        signed = run_in(node_venv, *node, "agreements", "sign", terms.agreement_id, "--home",
                        home, "--yes", cwd=tmp_path)  # fmt: skip
        assert "the hub has received the signature" in signed

        serve = [str(node_venv / "bin" / "sauti"), "node", "serve", "--home", str(home)]
        node_log = tmp_path / "node.log"
        with process([*serve, "--port", str(port)], env={}, log=node_log) as served:
            wait_healthy(f"http://127.0.0.1:{port}", served, node_log, timeout=120)
            spec = {
                "agreement_id": terms.agreement_id,
                "dataset": demo.contract.name,
                "measure": "count",
                "group_by": ["sex"],
                "rho": 0.05,
            }
            ana = {"Authorization": f"Bearer {analyst}"}
            submitted = client.post("/v1/queries", json=spec, params={"wait": 30}, headers=ana)
            assert submitted.status_code in (200, 201, 202), submitted.text
            result = submitted.json()
            for _ in range(10):
                if result["status"] != "running":
                    break
                result = client.get(
                    f"/v1/queries/{result['query_id']}", params={"wait": 10}, headers=ana
                ).json()
    assert [(n["node_id"], n["outcome"]) for n in result["nodes"]] == [(demo.node_id, "ok")]
    assert result["status"] == "complete", result
    assert any(cell.get("estimate") is not None for cell in result["cells"]), result
    # Each side's log (the nightly `sauti audit verify` of deploy/systemd) from its own install;
    # the other side's home is refused there in one line.
    for side, own, other in (("node", home, hub_dir), ("hub", hub_dir, home)):
        venv = installs[side]
        assert "audit log verifies" in run_in(venv, "sauti", "audit", "verify", "--home", own,
                                              cwd=tmp_path)  # fmt: skip
        refused = subprocess.run(
            [venv / "bin" / "sauti", "audit", "verify", "--home", other],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=False,
        )
        assert refused.returncode == 1
        assert f"{side}-only install" in refused.stdout + refused.stderr
        assert "Traceback" not in refused.stderr
