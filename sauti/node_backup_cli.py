"""`sauti node backup` and `sauti node restore`: the whole node home in one archive."""

import getpass
from pathlib import Path
from typing import Annotated

import typer

from sauti.cli_common import fail
from sauti.node_options import DEFAULT_HOME, Home, HomeFolder, settings_for

app = typer.Typer()


@app.command("backup")
def backup(
    out: Annotated[Path, typer.Option("--out", help="The archive to write (.tar.gz).")],
    home: Home = DEFAULT_HOME,
    without_database: Annotated[
        bool,
        typer.Option("--without-database", help="Files only (a PostgreSQL node: pg_dump it)."),
    ] = False,
) -> None:
    """Back up keys, identity, datasets, ledger and audit chain (keep the archive secret)."""
    from node import backup as node_backup
    from node.exceptions import NodeError

    try:
        count = node_backup.backup(
            settings=settings_for(home),
            out=out,
            actor=f"cli:{getpass.getuser()}",
            include_database=not without_database,
        )
    except NodeError as exc:
        fail(f"{exc.code}: {exc.message}")
    typer.echo(f"backed up {count} files to {out} (it holds the node's private key)")


@app.command("restore")
def restore(
    archive: Annotated[Path, typer.Argument(help="An archive from `sauti node backup`.")],
    home: HomeFolder = DEFAULT_HOME,
) -> None:
    """Restore a backup into a new, empty home; then run `sauti audit verify`."""
    from node import backup as node_backup
    from node.exceptions import NodeError

    try:
        manifest = node_backup.restore(archive=archive, home=home)
    except NodeError as exc:
        fail(f"{exc.code}: {exc.message}")
    typer.echo(
        f"restored node {manifest['node_id']} ({len(manifest['files'])} files) into {home}; "
        f"next: sauti audit verify --home {home}"
    )
