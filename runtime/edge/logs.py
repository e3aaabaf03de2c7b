"""Logging without data: what `sauti hub|node serve`, the demo and the hub worker configure.

An exception's text and traceback carry data: SQLAlchemy puts the SQL and its parameters
(user names, token hashes, values) in the message, Celery and asyncio put the exception's
repr in theirs. So no handler configured here ever prints one. A record with an exception
prints its first message line, the exception's type and the innermost frame of Sauti's own
code (file and line: where, never what), and every line names the request it was written
for (`X-Request-ID`), which the error's answer names too. Access lines drop query strings
(searches name people). The level is the only knob; no level prints a traceback.
"""

import logging
import logging.config
import sys
import traceback
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

from runtime.edge.asgi import current_request_id

_ROOT = Path(__file__).resolve().parents[2]
_PACKAGES = frozenset({"contracts", "runtime", "hub", "node", "sauti"})
FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"


def _own_frame(tb: TracebackType | None) -> str | None:
    where = None
    for frame in traceback.extract_tb(tb):
        try:
            relative = Path(frame.filename).resolve().relative_to(_ROOT)
        except ValueError:
            continue
        if relative.parts and relative.parts[0] in _PACKAGES:
            where = f"{relative.as_posix()}:{frame.lineno}"
    return where


def describe(exc: BaseException) -> str:
    """An exception as its type and where in Sauti's code it arose: never its text."""
    where = _own_frame(exc.__traceback__)
    return f"{type(exc).__name__} at {where}" if where else type(exc).__name__


class DataFreeFormatter(logging.Formatter):
    """One line per record; an exception is its type and where, never its text or traceback."""

    def __init__(self, fmt: str = FORMAT, datefmt: str | None = None) -> None:
        super().__init__(fmt, datefmt)

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.exc_info and record.exc_info[0] is not None:
            kind, value, _tb = record.exc_info
            what = describe(value) if value is not None else kind.__name__
            message = message.split("\n", 1)[0].rstrip() + f" [{what}]"
        fields = {
            **record.__dict__,
            "message": message,
            "request_id": getattr(record, "request_id", None) or current_request_id() or "-",
            "asctime": self.formatTime(record, self.datefmt),
        }
        # Never the cached exc_text or stack_info another handler may have put on the record.
        return self._style._fmt % fields


class _AccessWithoutQuery(logging.Filter):
    """uvicorn's access line without the query string."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            record.args = (*args[:2], args[2].split("?", 1)[0], *args[3:])
        return True


class _TaskFailureWithoutText(logging.Filter):
    """Celery's task failure line: the exception's type instead of its repr and traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, Mapping) and "exc" in record.args:
            kind = (
                record.exc_info[0].__name__ if record.exc_info and record.exc_info[0] else "error"
            )
            record.args = {**record.args, "exc": kind, "traceback": "", "args": "", "kwargs": ""}
        return True


class _Stderr(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever `sys.stderr` is when it writes (a test runner swaps it)."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


_CONFIGURED = ("", "uvicorn", "uvicorn.error", "uvicorn.access", "celery.app.trace")


@contextmanager
def data_free_logging(level: str = "INFO") -> Iterator[None]:
    """`log_config` for the block, then the logging that was there before.

    A command run in process (the CLI's tests) must not leave its handlers on the root
    logger; a server or worker process simply ends inside the block.
    """
    loggers = [logging.getLogger(name) for name in _CONFIGURED]
    saved = [
        (lg, list(lg.handlers), lg.level, lg.propagate, list(lg.filters), lg.disabled)
        for lg in loggers
    ]
    logging.config.dictConfig(log_config(level))
    try:
        yield
    finally:
        for lg, handlers, level_, propagate, filters, disabled in saved:
            lg.handlers[:] = handlers
            lg.setLevel(level_)
            lg.propagate = propagate
            lg.filters[:] = filters
            lg.disabled = disabled


def log_config(level: str = "INFO") -> dict[str, Any]:
    """A `logging.config.dictConfig` (also uvicorn's `log_config`) for a server or worker."""
    level = level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {
            "access": {"()": _AccessWithoutQuery},
            "task_failure": {"()": _TaskFailureWithoutText},
        },
        "formatters": {"data_free": {"()": DataFreeFormatter}},
        "handlers": {
            "stderr": {"()": _Stderr, "formatter": "data_free"},
            "access": {"()": _Stderr, "formatter": "data_free", "filters": ["access"]},
        },
        "root": {"handlers": ["stderr"], "level": level},
        "loggers": {
            # uvicorn's own handlers would print tracebacks: everything goes through the root.
            "uvicorn": {"handlers": [], "level": level, "propagate": True},
            "uvicorn.error": {"handlers": [], "level": level, "propagate": True},
            "uvicorn.access": {"handlers": ["access"], "level": level, "propagate": False},
            "celery.app.trace": {"filters": ["task_failure"], "propagate": True},
        },
    }
