"""Read an export (Kobo, ODK Central, CSV, XLSX, Parquet) into text columns with clean names.

Every reader yields a polars LazyFrame whose columns are all strings: the contract, not a
reader's guess, decides types. Column names are normalised (group paths stripped, Kobo
select_multiple option columns named `question_option`), and a codebook can derive the
yes/no option columns an export lacks.
"""

import csv
import io
import re
import zipfile
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

import openpyxl
import polars as pl

from node.datasets import records
from node.datasets.codebook import Codebook
from node.datasets.exceptions import FileUnreadable
from node.datasets.schemas import FileFormat, Issue, SourceInfo
from node.datasets.sources import (
    Progress,
    Received,
    normalise_text,
    open_normalised,
    sha256_of,
    sniff,
)

ROW_INDEX = "__sauti_row__"
MAX_ROWS_NAMED = 10
YES = {"1", "true", "yes", "TRUE", "True"}
NO = {"0", "false", "no", "FALSE", "False"}
ODK_META = {"SubmissionDate", "KEY", "PARENT_KEY", "SubmitterID", "SubmitterName"}
_INVALID = re.compile(r"[^A-Za-z0-9_]+")


@dataclass
class Table:
    """One export read as text columns, plus what reading it found."""

    frame: pl.LazyFrame
    source: SourceInfo
    issues: list[Issue] = field(default_factory=list)
    derived: list[str] = field(default_factory=list)
    option_columns: dict[str, tuple[str, str]] = field(default_factory=dict)


def sanitise(name: str, index: int) -> str:
    """A contract-legal column name: ASCII letters, digits and _, at most 63 characters."""
    clean = _INVALID.sub("_", name.strip()).strip("_")
    if not clean or not re.search(r"[A-Za-z0-9]", clean):
        return f"column_{index + 1}"
    if clean[0].isdigit():
        clean = f"_{clean}"
    if name.startswith("_") and not clean.startswith("_"):
        clean = f"_{clean}"  # keep Kobo's _uuid, _index, _submission_time recognisable
    return clean[:63]


def normalise_names(
    headers: list[str], *, fmt: FileFormat, codebook: Codebook | None
) -> tuple[dict[str, str], dict[str, tuple[str, str]], list[Issue]]:
    """Map raw headers to clean names; Kobo `q/opt` option columns become `q_opt`."""
    sep = {"kobo": "/", "odk": "-"}.get(fmt)
    known = {q.name for q in codebook.questions} if codebook else set()
    present = set(headers)
    proposed: list[str] = []
    options: dict[str, tuple[str, str]] = {}
    for i, header in enumerate(headers):
        name = header.strip()
        if sep and name not in ODK_META:
            match = next((q for q in known if name == q or name.endswith(sep + q)), None)
            parts = name.split(sep)
            if match is not None:
                name = match
            elif len(parts) >= 2 and sep.join(parts[:-1]) in present:
                question = parts[-2]
                name = f"{question}_{parts[-1]}"
                options[sanitise(name, i)] = (question, parts[-1])
            else:
                name = parts[-1]
        proposed.append(sanitise(name, i))
    issues: list[Issue] = []
    seen: dict[str, int] = {}
    for name in proposed:
        seen[name] = seen.get(name, 0) + 1
    final = []
    for i, (header, name) in enumerate(zip(headers, proposed, strict=True)):
        # Two questions with one name in different groups: keep their full paths apart.
        final.append(name if seen[name] == 1 else sanitise(re.sub(r"[/-]", "_", header), i))
    dupes = sorted({n for n in final if final.count(n) > 1})
    for name in dupes:
        issues.append(
            Issue(
                severity="error",
                rule="duplicate_column",
                column=name,
                count=final.count(name),
                message="several columns of the file have this name",
            )
        )
    return dict(zip(headers, final, strict=True)), options, issues


def read_table(
    *,
    path: Path,
    fmt: FileFormat | None,
    workdir: Path,
    max_bytes: int,
    codebook: Codebook | None = None,
    repeat: str | None = None,
    encoding: str | None = None,
    delimiter: str | None = None,
    sheet: str | None = None,
    progress: Progress | None = None,
) -> Table:
    received = sniff(path, fmt=fmt, max_bytes=max_bytes)
    resolved: FileFormat = fmt or {"parquet": "parquet", "xlsx": "xlsx", "zip": "odk"}.get(
        received.kind, "csv"
    )  # type: ignore[assignment]
    if received.kind == "zip":
        table = _read_odk_zip(received, workdir=workdir, repeat=repeat, progress=progress)
    elif received.kind == "parquet":
        table = _read_parquet(received)
    elif received.kind == "xlsx":
        table = _read_xlsx(received, fmt=resolved, sheet=sheet)
    else:
        table = _read_text(
            received,
            fmt=resolved,
            workdir=workdir,
            encoding=encoding,
            delimiter=delimiter,
            progress=progress,
        )
        if resolved == "odk" and repeat is not None:
            table = _join_repeat_sibling(table, main=path, repeat=repeat, workdir=workdir)
    if repeat is not None and table.source.repeat is None:
        raise FileUnreadable(f"no repeat group {repeat} found beside {path.name}")
    return _finish(table, fmt=resolved, codebook=codebook)


def _finish(table: Table, *, fmt: FileFormat, codebook: Codebook | None) -> Table:
    frame = table.frame
    headers = [h for h in frame.collect_schema().names() if h != ROW_INDEX]
    if len(headers) == len(frame.collect_schema().names()):
        frame = frame.with_row_index(ROW_INDEX, offset=1)
    mapping, options, issues = normalise_names(headers, fmt=fmt, codebook=codebook)
    table.issues.extend(issues)
    frame = frame.rename(mapping)
    if options:
        # Kobo writes option columns as 1/0 (or True/False): the contract's levels are yes/no.
        frame = frame.with_columns(
            pl.when(pl.col(c).is_in(list(YES)))
            .then(pl.lit("yes"))
            .when(pl.col(c).is_in(list(NO)))
            .then(pl.lit("no"))
            .otherwise(pl.col(c))
            .alias(c)
            for c in options
        )
    table.option_columns = options
    if codebook is not None and not issues:
        names = set(mapping.values())
        derived = []
        for q in codebook.questions:
            if q.type != "select_multiple" or q.name not in names or q.list_name is None:
                continue
            for choice in codebook.choices.get(q.list_name, []):
                column = sanitise(f"{q.name}_{choice.name}", 0)
                if column in names:
                    continue
                tokens = pl.col(q.name).str.split(" ")
                derived.append(
                    pl.when(pl.col(q.name).is_null())
                    .then(None)
                    .when(tokens.list.contains(choice.name))
                    .then(pl.lit("yes"))
                    .otherwise(pl.lit("no"))
                    .alias(column)
                )
                table.derived.append(column)
        if derived:
            frame = frame.with_columns(derived)
    table.frame = frame
    return table


def _read_text(
    received: Received,
    *,
    fmt: FileFormat,
    workdir: Path,
    encoding: str | None,
    delimiter: str | None,
    progress: Progress | None,
) -> Table:
    out = workdir / f"{received.path.stem}.utf8.csv.zst"
    text = normalise_text(
        received, out=out, encoding=encoding, delimiter=delimiter, progress=progress
    )
    issues, blank = _ragged_rows(text.path, text.delimiter, progress=progress)
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


def _ragged_rows(
    path: Path, delimiter: str, *, progress: Progress | None
) -> tuple[list[Issue], list[int]]:
    """Records with another field count than the header (row numbers), and blank lines."""
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
                message=f"rows with another number of fields than the header's {width}",
            )
        )
    if blank:
        issues.append(
            Issue(
                severity="warning",
                rule="blank_row",
                count=len(blank),
                rows=tuple(b + 1 for b in blank[:MAX_ROWS_NAMED]),
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
            for n, record in enumerate(reader):
                if len(record) != shape.width:
                    (shape.ragged if record else shape.blank).append(n)
        except StopIteration:
            pass
        except csv.Error as exc:
            raise FileUnreadable(
                f"{path.name} is not a well-formed delimited table (an unclosed quote?)"
            ) from exc
    return shape


def _read_parquet(received: Received) -> Table:
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


def _read_xlsx(received: Received, *, fmt: FileFormat, sheet: str | None) -> Table:
    try:
        workbook = openpyxl.load_workbook(received.path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many types for a damaged workbook
        raise FileUnreadable(f"{received.path.name} cannot be read as a workbook") from exc
    try:
        if sheet is not None and sheet not in workbook.sheetnames:
            raise FileUnreadable(f"{received.path.name} has no sheet {sheet}")
        ws = workbook[sheet] if sheet is not None else workbook.worksheets[0]
        rows = ws.iter_rows(values_only=True)
        header_row = next(rows, None)
        if header_row is None:
            raise FileUnreadable(f"{received.path.name} has an empty first sheet")
        headers = [_text(h) or "" for h in header_row]
        columns: list[list[str | None]] = [[] for _ in headers]
        for raw in rows:
            values = [_text(v) for v in raw]
            if not any(values):
                continue  # spreadsheets carry formatted but empty rows
            for i, column in enumerate(columns):
                column.append(values[i] if i < len(values) else None)
        sheet_name = ws.title
    finally:
        workbook.close()
    keep = [i for i, h in enumerate(headers) if h or any(v is not None for v in columns[i])]
    data = {(headers[i] or f"column_{i + 1}"): pl.Series(columns[i], dtype=pl.String) for i in keep}
    if len(data) != len(keep):
        raise FileUnreadable(f"{received.path.name} repeats a column header")
    source = SourceInfo(
        filename=received.path.name,
        format=fmt,
        bytes=received.size,
        sha256=sha256_of(received.path),
        sheet=sheet_name,
    )
    return Table(frame=pl.DataFrame(data).lazy(), source=source)


def _read_odk_zip(
    received: Received, *, workdir: Path, repeat: str | None, progress: Progress | None
) -> Table:
    """An ODK Central export: the main CSV plus one CSV per repeat group."""
    try:
        with zipfile.ZipFile(received.path) as z:
            members = [m for m in z.namelist() if m.lower().endswith(".csv")]
            if not members:
                raise FileUnreadable(f"{received.path.name} holds no CSV file")
            extracted: list[Path] = []
            for member in members:
                target = workdir / f"zip-{len(extracted)}-{Path(member).name}"
                with z.open(member) as src, target.open("wb") as dst:
                    for block in iter(lambda: src.read(1 << 20), b""):
                        dst.write(block)
                extracted.append(target)
    except zipfile.BadZipFile as exc:
        raise FileUnreadable(f"{received.path.name} is a damaged zip archive") from exc
    tables = {}
    for path in extracted:
        inner = Received(path=path, kind="text", size=path.stat().st_size)
        table = _read_text(
            inner, fmt="odk", workdir=workdir, encoding=None, delimiter=None, progress=progress
        )
        tables[path] = table
    mains = [p for p, t in tables.items() if "PARENT_KEY" not in _names(t)]
    if len(mains) != 1:
        raise FileUnreadable(f"{received.path.name} does not hold exactly one main table")
    main = tables[mains[0]]
    source_fields = {"filename": received.path.name, "bytes": received.size}
    source_fields["sha256"] = sha256_of(received.path)
    if repeat is None:
        main.source = main.source.model_copy(update=source_fields)
        return main
    child_path = next((p for p in tables if p.stem.endswith(f"-{repeat}")), None)
    if child_path is None:
        raise FileUnreadable(f"{received.path.name} has no table for repeat group {repeat}")
    joined = _join(main, tables[child_path], repeat=repeat)
    joined.source = joined.source.model_copy(update=source_fields)
    return joined


def _names(table: Table) -> list[str]:
    return table.frame.collect_schema().names()


def _join_repeat_sibling(table: Table, *, main: Path, repeat: str, workdir: Path) -> Table:
    sibling = main.with_name(f"{main.stem}-{repeat}.csv")
    if not sibling.exists():
        raise FileUnreadable(f"no repeat file {sibling.name} beside {main.name}")
    inner = Received(path=sibling, kind="text", size=sibling.stat().st_size)
    child = _read_text(
        inner, fmt="odk", workdir=workdir, encoding=None, delimiter=None, progress=None
    )
    return _join(table, child, repeat=repeat)


def _join(main: Table, child: Table, *, repeat: str) -> Table:
    """One row per repeat instance, with its submission's columns; PARENT_KEY is the unit."""
    child_names = set(_names(child))
    if "PARENT_KEY" not in child_names or "KEY" not in set(_names(main)):
        raise FileUnreadable(f"the repeat table {repeat} lacks PARENT_KEY or the main table KEY")
    rename = {
        n: f"parent_{n}" for n in _names(main) if n in child_names and n not in ("KEY", ROW_INDEX)
    }
    parent = main.frame.drop(ROW_INDEX).rename(rename).rename({"KEY": "PARENT_KEY"})
    frame = child.frame.join(parent, on="PARENT_KEY", how="left", maintain_order="left")
    source = child.source.model_copy(update={"repeat": repeat})
    return Table(frame=frame, source=source, issues=[*main.issues, *child.issues])
