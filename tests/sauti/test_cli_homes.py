"""A command pointed at a home that is not there says so, naming the command that makes one,
instead of failing deep in SQLite."""

from pathlib import Path

import pytest
from typer.testing import CliRunner

from sauti.cli import app


@pytest.mark.parametrize(
    ("args", "side"),
    [
        (["node", "datasets"], "node"),
        (["node", "budget"], "node"),
        (["node", "token", "create", "--name", "x"], "node"),
        (["node", "migrate", "--status"], "node"),
        (["hub", "token", "list"], "hub"),
        (["hub", "nodes", "list"], "hub"),
        (["hub", "agreements", "list"], "hub"),
        (["hub", "modules", "coverage", "lnob_core"], "hub"),
    ],
)
def test_a_missing_home_is_a_clear_usage_error(tmp_path: Path, args: list[str], side: str) -> None:
    missing = tmp_path / "nowhere"
    result = CliRunner().invoke(app, [*args, "--home", str(missing)])
    assert result.exit_code == 2
    assert f"is not a {side} home" in result.stderr
    assert f"sauti {side} init --home {missing}" in result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert not missing.exists()  # nothing was created on the way
