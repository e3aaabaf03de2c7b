"""Repeat groups joined up to their submission, at any depth (Kobo repeat sheets, ODK repeats).

A repeat table has one row per repeat instance (a household member, a tree, a stem of a
tree). Queried alone, each row would count as its own person; the privacy unit is the
submission. So a repeat table is joined to its parent, the parent to its own parent, up to
the main table: every row carries its ancestors' columns and the submission's key, and the
draft proposes that key as the unit. How each tool links the tables:

- ODK Central: every repeat file has `KEY` (`uuid:…/trees[2]/stems[1]`) and `PARENT_KEY`, the
  parent's `KEY` (`uuid:…/trees[2]`, or the submission's `uuid:…`). The submission key is the
  main table's `KEY`, added as `SUBMISSION_KEY` (for a first-level repeat it equals PARENT_KEY).
- KoboToolbox XLSX: every sheet has `_index`; a repeat sheet has `_parent_table_name`,
  `_parent_index` (the parent sheet's `_index`) and `_submission__uuid` (older exports only
  `_submission__id`: the main sheet's `_uuid` is then added as `_submission__uuid`).

A repeat row whose parent is missing is an error naming its rows, never a row of nulls.
"""

import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from node.datasets.exceptions import FileUnreadable
from node.datasets.schemas import Issue
from node.datasets.sources import Progress, Received, sha256_of
from node.datasets.tables import (
    MAX_ROWS_NAMED,
    ROW_INDEX,
    Table,
    header_of,
    names,
    read_sheet,
    read_text,
)

ODK_SUBMISSION = "SUBMISSION_KEY"
KOBO_SUBMISSION = "_submission__uuid"
KOBO_REPEAT_META = ("_index", "_parent_table_name", "_parent_index")
KOBO_ROOT_META = {
    "_id",
    "_uuid",
    "_index",
    "_submission_time",
    "_validation_status",
    "_notes",
    "_status",
    "_submitted_by",
    "__version__",
    "_version_",
    "_tags",
    "_xform_id_string",
    "_attachments",
    "_geolocation",
}
SHEET_NAME_LIMIT = 31  # Excel's limit: Kobo cuts longer repeat names to fit
_LINK, _KEY, _NEXT, _FOUND = "__sauti_link__", "__sauti_key__", "__sauti_next__", "__sauti_found"
_REPEAT_STEP = re.compile(r"^(.+)\[\d+\]$")


@dataclass(frozen=True)
class Ancestor:
    """A table above the repeat: its name, its own key, and the column naming its parent."""

    name: str
    table: Table
    key: str
    link: str | None  # None: the main table
    drop: frozenset[str] = frozenset()


def _first(table: Table, column: str) -> str | None:
    value = table.frame.select(pl.col(column).drop_nulls().first()).collect().item()
    return None if value is None else str(value)


def _check_unique(ancestor: Ancestor) -> None:
    repeated = (
        ancestor.table.frame.select(pl.col(ancestor.key).drop_nulls().is_duplicated().any())
        .collect()
        .item()
    )
    if repeated:
        raise FileUnreadable(
            f"the {ancestor.name} table repeats a {ancestor.key} value: the export is damaged,"
            " download it again"
        )


def join_up(
    child: Table,
    *,
    child_link: str,
    ancestors: list[Ancestor],
    submission: tuple[str, str] | None,
    group_sep: str,
    repeat: str,
) -> Table:
    """`child` with every ancestor's columns (nearest first), joined by key; missing parents
    are errors. `submission`: (main table column, name) to add as the submission key."""
    frame = child.frame.with_columns(pl.col(child_link).alias(_LINK))
    taken = set(names(child))
    issues = list(child.issues)
    markers = []
    for depth, ancestor in enumerate(ancestors):
        _check_unique(ancestor)
        root = ancestor.link is None
        select = [pl.col(ancestor.key).alias(_KEY)]
        if not root:
            select.append(pl.col(str(ancestor.link)).alias(_NEXT))
        for column in names(ancestor.table):
            if column in (ancestor.key, ancestor.link) or column in ancestor.drop:
                continue
            out = column
            if out in taken:
                # Root columns keep the name imports always gave them; a repeat's own columns
                # get its name as a group path, which name normalisation then keeps apart.
                out = f"parent_{column}" if root else f"{ancestor.name}{group_sep}{column}"
            while out in taken:
                out = f"{ancestor.name}{group_sep}{out}"
            taken.add(out)
            select.append(pl.col(column).alias(out))
        if root and submission is not None and submission[1] not in taken:
            select.append(pl.col(submission[0]).alias(submission[1]))
        marker = f"{_FOUND}{depth}__"
        markers.append(marker)
        select.append(pl.lit(True).alias(marker))
        frame = frame.join(
            ancestor.table.frame.select(select),
            left_on=_LINK,
            right_on=_KEY,
            how="left",
            maintain_order="left",
        ).drop(_LINK)
        if not root:
            frame = frame.rename({_NEXT: _LINK})
        issues.extend(ancestor.table.issues)
    orphans = (
        frame.filter(pl.any_horizontal(pl.col(m).is_null() for m in markers))
        .select(ROW_INDEX)
        .collect()
    )
    if orphans.height:
        issues.append(
            Issue(
                severity="error",
                rule="repeat_without_parent",
                count=orphans.height,
                rows=tuple(int(r) for r in orphans[ROW_INDEX].head(MAX_ROWS_NAMED)),
                message=(
                    f"rows of the repeat {repeat} whose parent is not in the export"
                    " (a filtered or partial download?): export the form whole"
                ),
            )
        )
    source = child.source.model_copy(update={"repeat": repeat})
    return Table(frame=frame.drop(markers), source=source, issues=issues)


# --- ODK Central -----------------------------------------------------------------------------


def _odk_parent(table: Table) -> str | None:
    """The repeat a repeat table sits in (None: the main table), from a PARENT_KEY."""
    parent_key = _first(table, "PARENT_KEY")
    if parent_key is None:
        return None
    for step in reversed(parent_key.split("/")[1:]):
        match = _REPEAT_STEP.match(step)
        if match:
            return match.group(1)
    return None


def join_odk(
    *,
    main: Table,
    repeat: str,
    locate: Callable[[str], Path | None],
    read: Callable[[Path], Table],
) -> Table:
    """The rows of repeat `repeat`, with the columns of every table above it."""
    child_path = locate(repeat)
    if child_path is None:
        raise FileUnreadable(f"the export has no table for the repeat group {repeat}")
    child = read(child_path)
    if "PARENT_KEY" not in names(child) or "KEY" not in names(main):
        raise FileUnreadable(f"the repeat table {repeat} lacks PARENT_KEY or the main table KEY")
    ancestors: list[Ancestor] = []
    current, seen = child, {repeat}
    while (parent := _odk_parent(current)) is not None:
        path = locate(parent)
        if parent in seen or path is None:
            raise FileUnreadable(
                f"the repeat {repeat} sits in the repeat {parent}, whose table is not in the"
                " export: export all repeat tables together"
            )
        seen.add(parent)
        current = read(path)
        ancestors.append(Ancestor(name=parent, table=current, key="KEY", link="PARENT_KEY"))
    ancestors.append(Ancestor(name="main", table=main, key="KEY", link=None))
    return join_up(
        child,
        child_link="PARENT_KEY",
        ancestors=ancestors,
        submission=("KEY", ODK_SUBMISSION),
        group_sep="-",
        repeat=repeat,
    )


def read_odk_zip(
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
    mains = [p for p in extracted if "PARENT_KEY" not in header_of(p)]
    if len(mains) != 1:
        raise FileUnreadable(f"{received.path.name} does not hold exactly one main table")

    def read(path: Path) -> Table:
        inner = Received(path=path, kind="text", size=path.stat().st_size)
        return read_text(
            inner, fmt="odk", workdir=workdir, encoding=None, delimiter=None, progress=progress
        )

    def locate(name: str) -> Path | None:
        found = [p for p in extracted if p.stem.endswith(f"-{name}") and p not in mains]
        return found[0] if len(found) == 1 else None

    main = read(mains[0])
    table = main if repeat is None else join_odk(main=main, repeat=repeat, locate=locate, read=read)
    table.source = table.source.model_copy(
        update={
            "filename": received.path.name,
            "bytes": received.size,
            "sha256": sha256_of(received.path),
        }
    )
    return table


def join_odk_siblings(main: Table, *, main_path: Path, repeat: str, workdir: Path) -> Table:
    """An unzipped ODK export: `form.csv` beside `form-members.csv` (and its parents')."""

    def locate(name: str) -> Path | None:
        sibling = main_path.with_name(f"{main_path.stem}-{name}.csv")
        return sibling if sibling.exists() else None

    def read(path: Path) -> Table:
        inner = Received(path=path, kind="text", size=path.stat().st_size)
        return read_text(
            inner, fmt="odk", workdir=workdir, encoding=None, delimiter=None, progress=None
        )

    if locate(repeat) is None:
        raise FileUnreadable(
            f"no repeat file {main_path.stem}-{repeat}.csv beside {main_path.name}"
        )
    return join_odk(main=main, repeat=repeat, locate=locate, read=read)


# --- KoboToolbox XLSX --------------------------------------------------------------------------


def _kobo_sheet(workbook: Any, table_name: str) -> str | None:
    sheets: list[str] = list(workbook.sheetnames)
    for candidate in (table_name, table_name[:SHEET_NAME_LIMIT]):
        if candidate in sheets:
            return candidate
    return None


def read_kobo_sheet(received: Received, workbook: Any, sheet: str) -> Table:
    """A Kobo XLSX sheet; a repeat sheet comes joined up to its submission."""
    child = read_sheet(received, workbook, sheet, fmt="kobo")
    if "_parent_index" not in names(child):
        return child
    main_sheet = workbook.sheetnames[0]
    ancestors: list[Ancestor] = []
    current, seen = child, {sheet}
    while True:
        parent_name = (
            _first(current, "_parent_table_name")
            if "_parent_table_name" in names(current)
            else None
        )
        parent_sheet = _kobo_sheet(workbook, parent_name) if parent_name else None
        if parent_sheet is None or parent_sheet == main_sheet:
            break  # Kobo names the main sheet after the form: anything else found is a repeat
        if parent_sheet in seen:
            raise FileUnreadable(f"{received.path.name}: the repeat sheets name each other")
        seen.add(parent_sheet)
        current = read_sheet(received, workbook, parent_sheet, fmt="kobo")
        if "_parent_index" not in names(current):
            break
        drop = frozenset(n for n in names(current) if n.startswith("_submission_"))
        ancestors.append(
            Ancestor(
                name=parent_sheet,
                table=current,
                key="_index",
                link="_parent_index",
                drop=drop | {"_parent_table_name"},
            )
        )
    main = read_sheet(received, workbook, main_sheet, fmt="kobo")
    if "_index" not in names(main):
        raise FileUnreadable(
            f"{received.path.name}: the main sheet {main_sheet} has no _index column to join"
            f" the repeat sheet {sheet} to"
        )
    has_uuid = KOBO_SUBMISSION in names(child)
    submission = None if has_uuid or "_uuid" not in names(main) else ("_uuid", KOBO_SUBMISSION)
    ancestors.append(
        Ancestor(
            name=main_sheet,
            table=main,
            key="_index",
            link=None,
            drop=frozenset(KOBO_ROOT_META),
        )
    )
    return join_up(
        child,
        child_link="_parent_index",
        ancestors=ancestors,
        submission=submission,
        group_sep="/",
        repeat=sheet,
    )
