"""`sauti demo`: the typer command over `sauti.demo.run`."""

from pathlib import Path
from typing import Annotated

import typer

from sauti.demo.data import DEFAULT_ROWS
from sauti.demo.run import DemoError, run_demo


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
    try:
        run_demo(out=out, rows=rows, serve=serve, echo=typer.echo)
    except DemoError as exc:
        typer.echo(f"demo failed: {exc}", err=True)
        raise typer.Exit(1) from exc
