"""Options shared by the `sauti hub` command modules (light: nothing of the hub is imported)."""

from pathlib import Path
from typing import Annotated

import typer

HELP = "The hub's home folder."


def existing_home(home: Path) -> Path:
    """A hub home must exist before a command uses it: say so, rather than fail in SQLite."""
    from hub.home import IDENTITY_FILE

    if not (home / IDENTITY_FILE).is_file():
        raise typer.BadParameter(
            f"{home} is not a hub home (no {IDENTITY_FILE}); create it with "
            f"`sauti hub init --home {home}`"
        )
    return home


Home = Annotated[
    Path, typer.Option("--home", envvar="SAUTI_HOME", help=HELP, callback=existing_home)
]
# For the commands that make a home, or may run before it is made (a database migration).
HomeFolder = Annotated[Path, typer.Option("--home", envvar="SAUTI_HOME", help=HELP)]
DEFAULT_HOME = Path("sauti-hub")
