"""Options shared by the `sauti hub` command modules (light: nothing of the hub is imported)."""

from pathlib import Path
from typing import Annotated

import typer

Home = Annotated[Path, typer.Option("--home", envvar="SAUTI_HOME", help="The hub's home folder.")]
DEFAULT_HOME = Path("sauti-hub")
