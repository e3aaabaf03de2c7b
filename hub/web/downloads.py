"""A query result as a file: CSV (UTF-8 with BOM, for spreadsheets) and XLSX (openpyxl).

One row per cell: the group levels, the estimate and its 95% interval, the cell's status
and the reason it was suppressed. Suppressed cells carry no numbers. Every text cell goes
through `contracts.spreadsheet.safe_cell`: a level such as `=HYPERLINK(...)` is shown, never run.
"""

import csv
from io import BytesIO, StringIO

from openpyxl import Workbook
from openpyxl.styles import Font

from contracts.spreadsheet import safe_cell, safe_row
from contracts.v1 import QueryResult

CSV_MEDIA_TYPE = "text/csv; charset=utf-8"
XLSX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
VALUE_COLUMNS = ("estimate", "ci95_low", "ci95_high", "status", "suppression_reason", "nodes")


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
    ):
        about.append([name, safe_cell(value)])
    buffer = BytesIO()
    book.save(buffer)
    return buffer.getvalue()
