"""A typer group whose sub-commands are imported only when one of them runs.

`sauti --help` lists every role from names and help lines held here, without importing a
role's module; `sauti node ...` imports the node's commands and nothing of the hub's.
Each target is "module:attribute", naming a `typer.Typer` (a sub-group) or a function (one
command); it is built exactly as `add_typer` / `command` would build it.
"""

from importlib import import_module
from typing import Any, ClassVar, NamedTuple

import typer
from typer.core import TyperCommand, TyperGroup
from typer.main import get_group
from typer.models import DefaultPlaceholder

# Plain help pages: typer's rich help alone costs about 0.3 s of CPU to import (rich's
# markdown, syntax and traceback modules), more than the whole `sauti --help` may take.
# Typer hands the root's mode down to every sub-command it builds.
MARKUP = None


class Lazy(NamedTuple):
    target: str  # "module:attribute"
    help: str


class Group(TyperGroup):
    """A typer group whose flags left unset cost nothing to read.

    Typer casts a flag's missing value (None) through a pydantic TypeAdapter: 0.2 s of CPU
    to import and build, paid by every group a command is reached through (its `--help`,
    the root's completion flags). False means the same to their callbacks and is taken as
    it is."""

    def get_params(self, ctx: Any) -> list[Any]:
        params = super().get_params(ctx)
        for param in params:
            if getattr(param, "is_flag", False) and param.default is None:
                param.default = False
        return params


class LazyGroup(Group):
    """Subclass it with `lazy` filled in and pass it as `typer.Typer(cls=...)`."""

    lazy: ClassVar[dict[str, Lazy]] = {}

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._listing = False

    def list_commands(self, ctx: Any) -> list[str]:
        return [*super().list_commands(ctx), *(n for n in self.lazy if n not in self.commands)]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name in self.commands or cmd_name not in self.lazy:
            return super().get_command(ctx, cmd_name)
        entry = self.lazy[cmd_name]
        if self._listing:  # a help page lists the name and its line: import nothing
            return TyperCommand(cmd_name, help=entry.help)
        command = _build(cmd_name, entry)
        self.commands[cmd_name] = command
        return command

    def format_help(self, ctx: Any, formatter: Any) -> None:
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False


def _build(name: str, entry: Lazy) -> Any:
    module, _, attribute = entry.target.partition(":")
    target = getattr(import_module(module), attribute)
    holder = typer.Typer(add_completion=False, rich_markup_mode=MARKUP, cls=Group)
    if isinstance(target, typer.Typer):
        holder.add_typer(target, name=name, help=entry.help)
    else:
        holder.command(name, help=entry.help)(target)
    _groups_as(holder, Group)
    return get_group(holder).commands[name]


def _groups_as(app: typer.Typer, cls: type[TyperGroup]) -> None:
    """Build every sub-group of `app` that names no class of its own as `cls`."""
    for info in app.registered_groups:
        if isinstance(info.cls, DefaultPlaceholder):
            info.cls = cls
        if info.typer_instance is not None:
            _groups_as(info.typer_instance, cls)
