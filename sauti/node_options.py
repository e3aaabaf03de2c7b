"""Options and settings shared by the `sauti node` command modules."""

from pathlib import Path
from typing import Annotated

import typer

from node.settings import NodeSettings

Home = Annotated[Path, typer.Option("--home", envvar="SAUTI_HOME", help="The node's home folder.")]
Json = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
DEFAULT_HOME = Path("sauti-node")


def settings_for(home: Path) -> NodeSettings:
    return NodeSettings(home=home)
