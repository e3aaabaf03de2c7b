"""Helpers every `sauti` sub-command module shares: failing, JSON output, reading models."""

import json
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import typer
from pydantic import BaseModel, ValidationError

from runtime import edge

M = TypeVar("M", bound=BaseModel)


def fail(message: str) -> NoReturn:
    """Print a one-line reason and exit 1 (refused or failed)."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1)


def data_free_logging(level: str = "info") -> AbstractContextManager[None]:
    """Logs without data for a server, worker or demo while the block runs
    (runtime.edge.logs): no traceback, exception text, SQL or query string at any level;
    each line names its request id."""
    return edge.data_free_logging(level)


def processes_option(help_text: str) -> Any:
    """`--processes N` (1 to 64) of a server or worker command; None: its setting decides."""
    return typer.Option("--processes", min=1, max=64, help=help_text)


def echo_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, ensure_ascii=False, default=str))


def read_model(path: Path, model: type[M]) -> M:
    """Parse a JSON file as `model`; the error names fields, never their values."""
    try:
        return model.model_validate_json(path.read_bytes())
    except OSError:
        fail(f"cannot read {path}")
    except ValidationError as exc:
        fields = sorted({".".join(str(p) for p in e["loc"]) or "(document)" for e in exc.errors()})
        fail(f"invalid_document: {path.name} has invalid fields: {', '.join(fields)}")
