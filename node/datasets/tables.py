"""One table of an export as text columns: a delimited text file, a workbook sheet, Parquet.

What every reader hands on is a `Table`: a polars LazyFrame whose columns are all strings
(the contract, not a reader's guess, decides types) plus a row number column, the source as
received, and the problems reading found (ragged records, blank lines, duplicate headers),
each naming rows and file lines, never a value.
"""

import csv
import io
import secrets
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

import openpyxl
import polars as pl

from node.datasets import records
from node.datasets.exceptions import FileUnreadable
from node.datasets.file_format import FileFormat
from node.datasets.schemas import Issue, SourceInfo
from node.datasets.sources import (
    SNIFF_BYTES,
    Progress,
    Received,
    detect_encoding,
    normalise_text,
    open_normalised,
    sha256_of,
    sniff_delimiter,
)

ROW_INDEX = "__sauti_row__"
MAX_ROWS_NAMED = 10


@dataclass
class Table:
    """One export read as text columns, plus what reading it found."""

    frame: pl.LazyFrame
    source: SourceInfo
    issues: list[Issue] = field(default_factory=list)
    derived: list[str] = field(default_factory=list)
    # Select_multiple option columns (`q_opt`): the question and the option they stand for.
    option_columns: dict[str, tuple[str, str]] = field(default_factory=dict)


def names(table: Table) -> list[str]:
    """The data columns of a table (its row number column left out)."""
    return [n for n in table.frame.collect_schema().names() if n != ROW_INDEX]


def duplicate_headers(headers: list[str]) -> list[Issue]:
    """One error per header text the file repeats, naming it and the columns it heads."""
    counts = Counter(h.strip() for h in headers)
    issues = []
    for header, count in counts.items():
        if count < 2:
            continue
        positions = [i + 1 for i, h in enumerate(headers) if h.strip() == header]
        shown = header or "(empty)"
        issues.append(
            Issue(
                severity="error",
                rule="duplicate_header",
                column=shown,
                count=count,
                message=(
                    f"the header {shown!r} heads {count} columns"
                    f" ({', '.join(_spreadsheet_column(p) for p in positions)}):"
                    " rename all but one"
                ),
            )
        )
    return issues


def _spreadsheet_column(position: int) -> str:
    """`3` -> `C (3)`: the letters a spreadsheet shows above the column, and its number."""
    letters = ""
    n = position
    while n:
        n, rest = divmod(n - 1, 26)
        letters = chr(65 + rest) + letters
    return f"{letters} ({position})"


def header_of(path: Path) -> list[str]:
    """The header row of a delimited text file, read from its first bytes only."""
    with path.open("rb") as f:
        sample = f.read(SNIFF_BYTES)
    text = sample.decode(detect_encoding(sample, name=path.name), errors="replace")
    line = io.StringIO(text.lstrip("\ufeff"), newline="").readline()
    try:
        return next(csv.reader([line], delimiter=sniff_delimiter(line)))
    except (csv.Error, StopIteration):
        return []


def read_text(
    received: Received,
    *,
    fmt: FileFormat,
    workdir: Path,
    encoding: str | None,
    delimiter: str | None,
    progress: Progress | None,
) -> Table:
    out = workdir / f"{received.path.stem}-{secrets.token_hex(4)}.utf8.csv.zst"
    text = normalise_text(
        received, out=out, encoding=encoding, delimiter=delimiter, progress=progress
    )
    issues, blank = _ragged_rows(text.path, text.delimiter)
    with open_normalised(text.path) as raw:
        line = io.TextIOWrapper(raw, encoding="utf-8", newline="").readline()
    try:
        headers = next(csv.reader([line], delimiter=text.delimiter))
    except (csv.Error, StopIteration):
        headers = []
    issues = duplicate_headers(headers) + issues
    frame = pl.scan_csv(
        text.path,
        separator=text.delimiter,
        infer_schema=False,
        truncate_ragged_lines=True,
        encoding="utf8",
    )
    # Row numbers as the steward counts them: data rows from 1, blank lines included.
    frame = frame.with_row_index(ROW_INDEX, offset=1)
    if blank:
        frame = frame.filter(~pl.col(ROW_INDEX).is_in([b + 1 for b in blank]))
    source = SourceInfo(
        filename=received.path.name,
        format=fmt,
        bytes=received.size,
        sha256=received.sha256,
        encoding=text.encoding,
        delimiter=text.delimiter,
    )
    return Table(frame=frame, source=source, issues=issues)


def _ragged_rows(path: Path, delimiter: str) -> tuple[list[Issue], list[int]]:
    """Records with another field count than the header (rows and file lines), blank lines."""
    with open_normalised(path) as raw:
        shape = records.scan(raw.read, delimiter)
    if shape is None:
        shape = _csv_shape(path, delimiter)
    width, blank = shape.width, shape.blank
    ragged = [n + 1 for n in shape.ragged]
    issues = []
    if width <= 1 and delimiter == ",":
        issues.append(
            Issue(
                severity="warning",
                rule="single_column",
                count=1,
                message="the header has one column: check the delimiter (--delimiter)",
            )
        )
    if ragged:
        issues.append(
            Issue(
                severity="error",
                rule="ragged_row",
                count=len(ragged),
                rows=tuple(ragged[:MAX_ROWS_NAMED]),
                lines=tuple(shape.ragged_lines[:MAX_ROWS_NAMED]),
                message=f"records with another number of fields than the header's {width}",
            )
        )
    if blank:
        issues.append(
            Issue(
                severity="warning",
                rule="blank_row",
                count=len(blank),
                rows=tuple(b + 1 for b in blank[:MAX_ROWS_NAMED]),
                lines=tuple(shape.blank_lines[:MAX_ROWS_NAMED]),
                message="blank lines were skipped",
            )
        )
    return issues, blank


def _csv_shape(path: Path, delimiter: str) -> records.Shape:
    """The csv module's field counts, for files the vectorised scanner does not vouch for."""
    shape = records.Shape()
    with open_normalised(path) as raw:
        reader = csv.reader(
            io.TextIOWrapper(raw, encoding="utf-8", newline=""), delimiter=delimiter
        )
        try:
            shape.width = len(next(reader))
            n = 0
            while True:
                line = reader.line_num + 1  # the record about to be read starts here
                record = next(reader)
                if len(record) != shape.width:
                    if record:
                        shape.ragged.append(n)
                        shape.ragged_lines.append(line)
                    else:
                        shape.blank.append(n)
                        shape.blank_lines.append(line)
                n += 1
        except StopIteration:
            pass
        except csv.Error as exc:
            raise FileUnreadable(
                f"{path.name} is not a well-formed delimited table (an unclosed quote?)"
            ) from exc
    return shape


def read_parquet(received: Received) -> Table:
    try:
        frame = pl.scan_parquet(received.path)
        frame = frame.select(pl.all().cast(pl.String))
        frame.collect_schema()
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise FileUnreadable(f"{received.path.name} cannot be read as Parquet") from exc
    source = SourceInfo(
        filename=received.path.name,
        format="parquet",
        bytes=received.size,
        sha256=sha256_of(received.path),
    )
    return Table(frame=frame, source=source)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    text = str(value)
    return text if text.strip() else None


def open_workbook(received: Received) -> Any:
    try:
        return openpyxl.load_workbook(received.path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many types for a damaged workbook
        raise FileUnreadable(f"{received.path.name} cannot be read as a workbook") from exc


def read_sheet(received: Received, workbook: Any, sheet: str, *, fmt: FileFormat) -> Table:
    """One sheet as text columns; rows numbered as data rows from 1 (empty rows skipped)."""
    ws = workbook[sheet]
    rows = ws.iter_rows(values_only=True)
    header_row = next(rows, None)
    if header_row is None:
        raise FileUnreadable(f"{received.path.name}: the sheet {sheet} is empty")
    headers = [_text(h) or "" for h in header_row]
    columns: list[list[str | None]] = [[] for _ in headers]
    numbers: list[int] = []
    for n, raw in enumerate(rows, start=1):
        values = [_text(v) for v in raw]
        if not any(values):
            continue  # spreadsheets carry formatted but empty rows
        numbers.append(n)
        for i, column in enumerate(columns):
            column.append(values[i] if i < len(values) else None)
    keep = [i for i, h in enumerate(headers) if h or any(v is not None for v in columns[i])]
    issues = duplicate_headers([headers[i] for i in keep])
    data: dict[str, pl.Series] = {ROW_INDEX: pl.Series(numbers, dtype=pl.UInt32)}
    for i in keep:
        name = headers[i] or f"column_{i + 1}"
        while name in data:
            name += "_duplicate"  # named in the issue above; kept apart so reading goes on
        data[name] = pl.Series(columns[i], dtype=pl.String)
    source = SourceInfo(
        filename=received.path.name,
        format=fmt,
        bytes=received.size,
        sha256=received.sha256 or sha256_of(received.path),
        sheet=ws.title,
    )
    return Table(frame=pl.DataFrame(data).lazy(), source=source, issues=issues)
