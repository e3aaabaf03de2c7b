"""A query result as a file: CSV (UTF-8 with BOM, for spreadsheets) and XLSX (openpyxl).

One row per cell: the group levels, the estimate and its 95% interval, the cell's status
and the reason it was suppressed, the nodes it combines and the privacy guarantee of their
answers (rho, epsilon at delta, mechanism, noise scale; `cell_guarantee`). Suppressed cells
carry no numbers. The XLSX adds a `query` sheet with the question, each node's guarantee
and, for quantiles and histograms, the public grid. Every text cell goes
through `contracts.spreadsheet.safe_cell`: a level such as `=HYPERLINK(...)` is shown, never run.
"""

import csv
from io import BytesIO, StringIO

from openpyxl import Workbook
from openpyxl.styles import Font

from contracts.spreadsheet import safe_cell, safe_row
from contracts.v1 import QueryResult
from contracts.v1.result import GUARANTEE_COLUMNS, cell_guarantee

CSV_MEDIA_TYPE = "text/csv; charset=utf-8"
XLSX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
VALUE_COLUMNS = (
    "estimate",
    "ci95_low",
    "ci95_high",
    "status",
    "suppression_reason",
    "nodes",
    *GUARANTEE_COLUMNS,
)


def key_columns(result: QueryResult) -> tuple[str, ...]:
    """The names of a cell key's parts: the result's dims (with `@bin` / `@quantile` for
    histogram and quantile cells), padded should a key ever be longer."""
    longest = max((len(c.key) for c in result.cells), default=0)
    extra = tuple(f"level_{i}" for i in range(len(result.group_by) + 1, longest + 1))
    return (*result.group_by, *extra)


def header(result: QueryResult) -> list[str]:
    return [*key_columns(result), *VALUE_COLUMNS]


def rows(result: QueryResult) -> list[list[str | float | None]]:
    out: list[list[str | float | None]] = []
    for cell in result.cells:
        row: list[str | float | None] = [
            *cell.key,
            cell.estimate,
            cell.ci95_low,
            cell.ci95_high,
            cell.status,
            cell.reason or "",
            " ".join(cell.nodes),
            *cell_guarantee(result, cell).values(),
        ]
        out.append(safe_row(row))
    return out


def filename(result: QueryResult, extension: str) -> str:
    return f"sauti-{result.spec.dataset}-{result.spec.measure}-{result.query_id}.{extension}"


def to_csv(result: QueryResult) -> bytes:
    buffer = StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(safe_row(header(result)))
    for row in rows(result):
        writer.writerow(["" if v is None else v for v in row])
    # The BOM makes spreadsheet programs read the file as UTF-8 (Devanagari, Bengali labels).
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")


def to_xlsx(result: QueryResult) -> bytes:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "result"
    sheet.append(safe_row(header(result)))
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    for row in rows(result):
        sheet.append(row)
    about = book.create_sheet("query")
    spec = result.spec
    for name, value in (
        ("query_id", str(result.query_id)),
        ("agreement_id", spec.agreement_id),
        ("dataset", spec.dataset),
        ("measure", spec.measure),
        ("column", spec.column or ""),
        ("value", spec.value or ""),
        ("group_by", ", ".join(spec.group_by)),
        ("weighted", "yes" if spec.weighted else "no"),
        ("filters", "; ".join(f"{f.column} in {', '.join(f.levels)}" for f in spec.filters)),
        ("rho", spec.rho),
        ("status", result.status),
        ("interval", "95% confidence interval for the noisy estimate"),
        *_grid_rows(result),
        *_guarantee_rows(result),
    ):
        about.append([name, safe_cell(value)])
    buffer = BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def _grid_rows(result: QueryResult) -> list[tuple[str, str | float]]:
    if result.grid is None:
        return []
    rows: list[tuple[str, str | float]] = [("grid", ", ".join(f"{g:g}" for g in result.grid))]
    if result.grid_resolution is not None:
        rows.append(("grid_resolution", result.grid_resolution))
    return rows


def _guarantee_rows(result: QueryResult) -> list[tuple[str, str | float]]:
    """Per answering node: its rho, (epsilon, delta), mechanism and every noisy component."""
    rows: list[tuple[str, str | float]] = []
    for node in result.nodes:
        if node.rho is None:
            continue
        rows.append(
            (
                f"node {node.node_id}",
                f"rho {node.rho!r} (zCDP); epsilon {node.epsilon!r} at delta {node.delta!r}; "
                f"{node.mechanism} noise, scale {node.noise_scale!r}",
            )
        )
        rows.extend(
            (
                f"node {node.node_id} component {c.name}",
                f"{c.mechanism}, scale {c.scale!r}, L2 sensitivity {c.sensitivity!r}, "
                f"rho {c.rho!r}",
            )
            for c in node.components or ()
        )
    return rows
