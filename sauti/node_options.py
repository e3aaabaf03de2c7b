"""Options and settings shared by the `sauti node` command modules."""

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from sauti.cli_common import existing_home

if TYPE_CHECKING:
    from node.settings import NodeSettings

HELP = "The node's home folder."
Home = Annotated[
    Path, typer.Option("--home", envvar="SAUTI_HOME", help=HELP, callback=existing_home("node"))
]
# For the commands that make a home, or may run before it is made (a database migration).
HomeFolder = Annotated[Path, typer.Option("--home", envvar="SAUTI_HOME", help=HELP)]
Json = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
DEFAULT_HOME = Path("sauti-node")


def settings_for(home: Path) -> "NodeSettings":
    """The node's settings, with automatic audit checkpoints on for this process: any
    command that appends to the chain (an import, a signature, a revocation) may make one
    due, and the checkpoint is signed before the command ends."""
    from node.audit import checkpoints
    from node.settings import NodeSettings

    settings = NodeSettings(home=home)
    checkpoints.enable(settings)
    return settings
