"""The `sauti ...` lines of README.md and docs/*.md run as written.

Every line must name real commands and options (checked against the typer app, nothing
run). The lines that work on the demo's data then run, in the README's order, against one
demo federation built once for the module (`sauti.demo.run.federation`: a hub and three
nodes, an agreement all have signed), with the README's placeholders filled in.
"""

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sauti.cli import app
from sauti.demo.data import DATASET, demo_nodes
from sauti.demo.run import Federation, federation
from tests.e2e.readme_commands import Line, command_lines, problems, tokens

pytestmark = pytest.mark.e2e
ROWS = 300
FIRST, SECOND = "np-dalit-rights", "bd-sex-worker-network"


def test_every_documented_line_names_real_commands_and_options() -> None:
    lines = command_lines()
    assert len(lines) > 80
    assert [p for line in lines for p in problems(line)] == []


@dataclass(frozen=True)
class Run:
    text: str  # the line as documented (after `sauti`, comments removed)
    home: str  # "node", "hub", or "" (the line names its own)
    ok: bool = True  # False: a refusal, as `error: ...` (exit 1), is the documented outcome
    says: str = ""  # a phrase the output must hold


RUNS = (
    Run("sauti node datasets", "node", says=DATASET),
    Run("sauti node agreements list", "node", says="active"),
    Run("sauti node agreements budget [lnob-2026]", "node", says="charges:"),
    Run("sauti node migrate [--status]", "node", says="database revision"),
    Run("sauti hub migrate", "hub", says="database already at revision"),
    Run("sauti audit verify --home DIR", "", says="audit log verifies"),
    Run(
        "sauti audit search --home DIR --agreement ID --analyst NAME --node ID --since 2026-01-01",
        "",
        says="0 entries",
    ),
    Run("sauti audit export --home DIR --out log.jsonl", ""),
    Run("sauti audit checkpoint --home NODE_DIR", ""),
    Run("sauti audit reconcile --hub-export hub.jsonl node-a.jsonl node-b.jsonl", ""),
    Run(
        'sauti hub org add knbs --name "Kenya National Bureau of Statistics" --kind nso '
        "--country 404",
        "hub",
    ),
    Run("sauti hub user add wanjiru --org knbs --role analyst", "hub"),
    Run("sauti hub token create --user wanjiru --role analyst --expires-days 30", "hub"),
    Run("sauti hub token list", "hub", says="wanjiru"),
    Run("sauti node steward add sita", "node"),
    Run("sauti node backup --out node.tar.gz", "node"),
    Run("sauti node restore node.tar.gz --home NEW_HOME", ""),
    # Every measure reaches the hub as a valid question; the demo's agreement allows counts
    # and shares only, so the hub refuses the others by name (docs/privacy.md has them run).
    Run("sauti query ... --measure mean --column income --by sex,country", "", ok=False),
    Run(
        "sauti query ... --measure quantile --column age --quantiles 0.25,0.5,0.75 "
        "[--candidates X,X,...]",
        "",
        ok=False,
    ),
    Run(
        "sauti query ... --measure histogram --column income --edges 0,1000,5000,20000 --weighted",
        "",
        ok=False,
    ),
)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Federation]:
    work = tmp_path_factory.mktemp("readme")
    with federation(work=work, nodes=demo_nodes(rows=ROWS)) as fed:
        yield fed


@pytest.fixture(scope="module")
def documented() -> dict[str, Line]:
    return {line.text: line for line in command_lines()}


def _placeholders(fed: Federation, cwd: Path) -> dict[str, str]:
    node = str(fed.node_homes[FIRST])
    return {
        "DIR": node,
        "NODE_DIR": node,
        "NEW_HOME": str(cwd / "restored"),
        "lnob-2026": fed.agreement_id,
        "income": "satisfaction",
        "age": "satisfaction",
        "X,X,...": "1,2,3,4,5",
    }


def _args(line: Line, fed: Federation, cwd: Path) -> list[str]:
    fill = _placeholders(fed, cwd)
    words = [fill.get(w, w) for w in tokens(line)]
    if line.text.startswith("sauti query ..."):
        words[1:1] = [
            *("--hub", fed.hub_url, "--token", fed.analyst_token),
            *("--agreement", fed.agreement_id, "--dataset", DATASET, "--rho", "0.05"),
        ]
    return words


def test_documented_lines_run_on_the_demo(
    demo: Federation, documented: dict[str, Line], tmp_path: Path
) -> None:
    """In the documents' order (a token is created before it is listed): one test, so no
    test distribution can reorder them."""
    _exports(demo, tmp_path)
    failures = [f for run in RUNS for f in _run(run, demo, documented, tmp_path)]
    assert failures == []


def _run(run: Run, fed: Federation, documented: dict[str, Line], cwd: Path) -> list[str]:
    line = documented.get(run.text)
    if line is None:
        return [f"no longer documented: {run.text}"]
    env = {"SAUTI_HOME": str(fed.hub_home if run.home == "hub" else fed.node_homes[FIRST])}
    before = Path.cwd()
    os.chdir(cwd)
    try:
        result = CliRunner().invoke(app, _args(line, fed, cwd), env=env)
    finally:
        os.chdir(before)
    output = result.stdout + result.stderr
    expected = 0 if run.ok else 1
    if (
        result.exit_code != expected
        or "Traceback" in output
        or not (result.exception is None or isinstance(result.exception, SystemExit))
        or run.says not in output
        or (not run.ok and ("error: " not in result.stderr or "invalid query" in output))
    ):
        return [f"{line.where}: {line.text} -> exit {result.exit_code}: {output[-400:]}"]
    return []


def _exports(fed: Federation, cwd: Path) -> None:
    """The audit exports `sauti audit reconcile` compares, made once."""
    runner = CliRunner()
    for name, home in (
        ("hub.jsonl", fed.hub_home),
        ("node-a.jsonl", fed.node_homes[FIRST]),
        ("node-b.jsonl", fed.node_homes[SECOND]),
    ):
        if not (cwd / name).exists():
            out = str(cwd / name)
            done = runner.invoke(app, ["audit", "export", "--home", str(home), "--out", out])
            assert done.exit_code == 0, done.output
