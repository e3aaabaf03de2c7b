"""`sauti demo`: the typer command over `sauti.demo.run`."""

import signal
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer

from sauti.cli_common import data_free_logging
from sauti.demo import DEFAULT_ROWS

# The temporary homes hold the demo's private keys: whichever of these stops the demo, the
# stack unwinds and removes them (only SIGKILL cannot be caught).
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _stop(_signum: int, _frame: FrameType | None) -> None:
    # One stop is enough: later signals must not interrupt the clean-up they started.
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)
    raise KeyboardInterrupt  # what Ctrl-C does: servers stop, temporary homes are removed


def _on_stop_signals() -> dict[int, object]:
    """Install `_stop`; the previous handlers, to restore (the command may run in process)."""
    return {signum: signal.signal(signum, _stop) for signum in STOP_SIGNALS}


def demo(
    out: Annotated[Path, typer.Option("--out", help="Folder for the CSV and JSON results.")] = Path(
        "sauti-demo-out"
    ),
    serve: Annotated[
        bool, typer.Option("--serve", help="Keep the servers up until Ctrl-C.")
    ] = False,
    rows: Annotated[
        int, typer.Option("--rows", min=100, help="Synthetic respondents per node.")
    ] = DEFAULT_ROWS,
) -> None:
    """Three synthetic CSO nodes and a hub on localhost answering DP questions end to end."""
    from sauti.demo.run import DemoError, run_demo

    previous = _on_stop_signals()
    try:
        with data_free_logging("warning"):
            run_demo(out=out, rows=rows, serve=serve, echo=typer.echo)
    except DemoError as exc:
        typer.echo(f"demo failed: {exc}", err=True)
        raise typer.Exit(1) from exc
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]
