"""`sauti hub serve --processes` and `sauti hub worker --processes`: refusals and the worker
supervisor (the processes themselves serve in tests/e2e/test_e2e_scale_out.py)."""

import signal
import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hub.home import init_home
from sauti import worker_processes
from sauti.cli import app as cli


def test_several_api_processes_need_postgresql(tmp_path: Path) -> None:
    init_home(tmp_path / "hub", hub_id="h")
    result = CliRunner().invoke(
        cli, ["hub", "serve", "--home", str(tmp_path / "hub"), "--processes", "2"]
    )
    assert result.exit_code == 1
    assert "sqlite_single_process" in result.output


def test_process_counts_come_from_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    init_home(tmp_path / "hub", hub_id="h")
    monkeypatch.setenv("HUB_API_PROCESSES", "3")
    result = CliRunner().invoke(cli, ["hub", "serve", "--home", str(tmp_path / "hub")])
    assert result.exit_code == 1  # the setting asked for 3 processes: SQLite refuses
    assert "sqlite_single_process" in result.output
    result = CliRunner().invoke(
        cli, ["hub", "worker", "--home", str(tmp_path / "hub"), "--processes", "0"]
    )
    assert result.exit_code == 2  # at least one


def exit_now(code: int) -> None:
    raise SystemExit(code)


def note_and_exit(path: str) -> None:
    with Path(path).open("a") as out:
        out.write("started\n")


def test_a_worker_that_fails_ends_the_group() -> None:
    with pytest.raises(SystemExit) as stopped:
        worker_processes.supervise(2, target=exit_now, code=3)
    assert stopped.value.code == 1


def test_a_worker_that_ends_is_replaced_until_the_group_is_stopped(tmp_path: Path) -> None:
    notes = tmp_path / "started"
    notes.touch()

    def stop_after_restarts() -> None:
        deadline = time.monotonic() + 120
        while len(notes.read_text().splitlines()) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        signal.raise_signal(signal.SIGTERM)

    stopper = threading.Thread(target=stop_after_restarts)
    stopper.start()
    worker_processes.supervise(1, target=note_and_exit, path=str(notes))
    stopper.join()
    # One process, started again when it ended, until stopped.
    assert len(notes.read_text().splitlines()) >= 2
    assert signal.getsignal(signal.SIGTERM) is not None
