"""Helpers every `sauti` sub-command module shares: failing, JSON output, reading models."""

import json
from collections.abc import Callable
from contextlib import AbstractContextManager
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NoReturn, TypeVar

import typer

if TYPE_CHECKING:
    from pydantic import BaseModel

M = TypeVar("M", bound="BaseModel")


def fail(message: str) -> NoReturn:
    """Print a one-line reason and exit 1 (refused or failed)."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1)


def existing_home(side: Literal["node", "hub"]) -> Callable[[Path], Path]:
    """The `--home` check of `side`'s commands: a home must exist before a command uses it,
    and saying so beats failing in SQLite. Imports `side` only when a command runs."""

    def check(home: Path) -> Path:
        identity = str(import_module(f"{side}.home").IDENTITY_FILE)
        if not (home / identity).is_file():
            raise typer.BadParameter(
                f"{home} is not a {side} home (no {identity}); create it with "
                f"`sauti {side} init --home {home}`"
            )
        return home

    return check


def data_free_logging(level: str = "info") -> AbstractContextManager[None]:
    """Logs without data for a server, worker or demo while the block runs
    (runtime.edge.logs): no traceback, exception text, SQL or query string at any level;
    each line names its request id."""
    from runtime import edge

    return edge.data_free_logging(level)


def processes_option(help_text: str) -> Any:
    """`--processes N` (1 to 64) of a server or worker command; None: its setting decides."""
    return typer.Option("--processes", min=1, max=64, help=help_text)


def echo_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, ensure_ascii=False, default=str))


def read_model(path: Path, model: type[M]) -> M:
    """Parse a JSON file as `model`; the error names fields, never their values."""
    from pydantic import ValidationError

    try:
        return model.model_validate_json(path.read_bytes())
    except OSError:
        fail(f"cannot read {path}")
    except ValidationError as exc:
        fields = sorted({".".join(str(p) for p in e["loc"]) or "(document)" for e in exc.errors()})
        fail(f"invalid_document: {path.name} has invalid fields: {', '.join(fields)}")
