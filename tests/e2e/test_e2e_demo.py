"""The demo end to end over real localhost sockets: tables, budgets, files, clean exit."""

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from typer.testing import CliRunner

from contracts import budget as exact
from contracts.v1 import QueryResult
from sauti.cli import app
from sauti.demo.run import questions, run_demo

pytestmark = pytest.mark.e2e


def _server_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("uvicorn-")]


def test_demo_answers_every_question_and_leaves_nothing_running(tmp_path: Path) -> None:
    printed: list[str] = []
    stop = threading.Event()
    stop.set()  # --serve returns at once: the servers' shutdown path is still exercised
    out = tmp_path / "out"

    report = run_demo(out=out, rows=1500, serve=True, echo=printed.append, stop=stop)

    text = "\n".join(printed)
    asked = questions()
    assert len(report.answers) == len(asked) >= 3
    for question, result in report.answers:
        assert result.status == "complete"
        assert {n.outcome for n in result.nodes} == {"ok"}
        assert len(result.nodes) == 3
        assert f"== {question.title}" in text
        # Every public level appears; some small groups are withheld, never dropped.
        assert result.cells
        for cell in result.cells:
            assert (cell.estimate is None) == (cell.status == "suppressed")
        assert (
            (out / f"{question.slug}.csv")
            .read_text()
            .startswith(",".join(result.group_by) + ",estimate,")
        )
        stored = QueryResult.model_validate_json((out / f"{question.slug}.json").read_text())
        assert stored == result
    assert text.count("95% interval") == len(asked)
    assert any(c.status == "suppressed" for _, r in report.answers for c in r.cells)
    assert any(c.status == "ok" for _, r in report.answers for c in r.cells)

    assert sorted(report.budgets) == sorted(
        ["np-dalit-rights", "bd-sex-worker-network", "ke-disability-federation"]
    )
    for lines in report.budgets.values():
        (line,) = lines
        assert line.queries == len(asked)
        assert line.rho_spent == exact.total(q.spec.rho for q in asked)
        assert line.rho_remaining < line.rho_budget
    assert "analyst token" in text
    assert len(report.files) == 2 * len(asked)
    assert _server_threads() == []


def test_demo_command_writes_results(tmp_path: Path) -> None:
    out = tmp_path / "results"
    result = CliRunner().invoke(app, ["demo", "--rows", "400", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "Remaining privacy budget" in result.output
    assert sorted(p.suffix for p in out.iterdir()) == sorted([".csv", ".json"] * len(questions()))
    assert _server_threads() == []


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_demo_stopped_by_a_signal_removes_its_temporary_homes(
    tmp_path: Path, signum: signal.Signals
) -> None:
    """The temporary homes hold private keys: any stop signal must take them away."""
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = {**os.environ, "TMPDIR": str(temp)}
    sauti = Path(sys.executable).with_name("sauti")
    command = [str(sauti), "demo", "--serve", "--rows", "100", "--out", str(tmp_path / "out")]
    with subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as proc:
        assert proc.stdout is not None
        seen: list[str] = []
        for line in proc.stdout:
            seen.append(line)
            if line.startswith("Serving until Ctrl-C"):
                break
        homes = list(temp.glob("sauti-demo-*"))
        assert len(homes) == 1, "".join(seen)
        assert list(homes[0].rglob("*.jwk")) or list(homes[0].rglob("*key*")), "no keys seen"
        proc.send_signal(signum)
        rest, _ = proc.communicate(timeout=120)
    assert list(temp.iterdir()) == [], "".join(seen) + rest
    assert "Traceback" not in rest
