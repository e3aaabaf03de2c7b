"""Options shared by the `sauti hub` command modules (light: nothing of the hub is imported)."""

from pathlib import Path
from typing import Annotated

import typer

from sauti.cli_common import existing_home

HELP = "The hub's home folder."
Home = Annotated[
    Path, typer.Option("--home", envvar="SAUTI_HOME", help=HELP, callback=existing_home("hub"))
]
# For the commands that make a home, or may run before it is made (a database migration).
HomeFolder = Annotated[Path, typer.Option("--home", envvar="SAUTI_HOME", help=HELP)]
DEFAULT_HOME = Path("sauti-hub")
