"""Cells for files people open in spreadsheets (CSV, XLSX): text is never run as a formula.

Spreadsheet programs run a cell that starts with `=`, `+`, `-` or `@` as a formula, and some
treat a leading tab or carriage return the same way (CSV injection). Level names, agreement
titles, free-text answers and actor names are typed by people, so every CSV or XLSX the hub
or node writes passes its cells through `safe_cell`, which prefixes such text with an
apostrophe as OWASP recommends. Numbers stay numbers: a float, an int, or text that is
exactly a number (`-3.5`, a negative estimate) is left alone, since no spreadsheet runs it.
"""

import re
from collections.abc import Iterable
from typing import TypeVar, cast

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
T = TypeVar("T")


def safe_cell(value: T) -> T:
    """`value`, or the text prefixed with `'` when a spreadsheet would run it as a formula.

    Only text is ever changed, and into text, so the value keeps its type."""
    if isinstance(value, str) and value[:1] in FORMULA_STARTS and not _NUMBER.fullmatch(value):
        return cast(T, "'" + value)
    return value


def safe_row(values: Iterable[T]) -> list[T]:
    return [safe_cell(v) for v in values]
