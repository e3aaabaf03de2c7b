"""Render a hub's combined `QueryResult` as an aligned text table, CSV or JSON."""

import csv
import io
from typing import Literal

from contracts.spreadsheet import safe_row
from contracts.v1 import NodeStatus, QueryResult, ResultCell
from contracts.v1.result import GUARANTEE_COLUMNS, cell_guarantee

Format = Literal["table", "csv", "json"]

# UN M49 codes of the LNOB partnership countries, for readable `country` cells.
M49_NAMES: dict[str, str] = {
    "050": "Bangladesh",
    "356": "India",
    "404": "Kenya",
    "454": "Malawi",
    "524": "Nepal",
    "566": "Nigeria",
    "704": "Viet Nam",
}

REASON_TEXT: dict[str, str] = {
    "below_min_cell_size": "below min cell size",
    "interval_too_wide": "interval too wide",
    "suppressed_at_node": "suppressed at a node",
    "grids_differ": "nodes used different grids",
}
# Reserved inner dims of histogram and quantile cells (contracts.v1.release).
DIM_TEXT: dict[str, str] = {"@bin": "bin", "@quantile": "quantile"}

CSV_COLUMNS = (
    "estimate",
    "ci95_low",
    "ci95_high",
    "status",
    "reason",
    "nodes",
    *GUARANTEE_COLUMNS,
)


def render_result(result: QueryResult, fmt: Format) -> str:
    """The result as text in `fmt`; every cell appears, suppressed ones without a number."""
    if fmt == "table":
        return _table(result)
    if fmt == "csv":
        return _csv(result)
    if fmt == "json":
        return result.model_dump_json(indent=2) + "\n"
    raise ValueError(f"unknown format {fmt!r}")


def _number(value: float, measure: str) -> str:
    if measure in ("count", "histogram"):
        return f"{round(value):,}"
    if measure == "quantile":
        return f"{value:,g}"
    if measure == "share":
        return f"{100 * value:.1f}%"
    return f"{value:,.2f}"


def _key_label(dim: str, code: str) -> str:
    if dim == "country" and code in M49_NAMES:
        return f"{M49_NAMES[code]} ({code})"
    return code


def _status_text(cell: ResultCell) -> str:
    if cell.status == "ok":
        return "ok"
    reason = REASON_TEXT.get(cell.reason or "", cell.reason or "no reason given")
    return f"suppressed ({reason})"


def _title(result: QueryResult) -> str:
    spec = result.spec
    if spec.measure == "count":
        what = "count of respondents"
    elif spec.measure == "share":
        what = f"share with {spec.column} = {spec.value}"
    elif spec.measure == "histogram":
        what = f"distribution of {spec.column}"
    elif spec.measure == "quantile":
        what = f"quantiles of {spec.column}"
    else:
        what = f"{spec.measure} of {spec.column}"
    if spec.weighted:
        what += " (survey-weighted)"
    dims = [DIM_TEXT.get(d, d) for d in result.group_by]
    by = f" by {' × '.join(dims)}" if dims else ""
    where = "".join(f"; {f.column} in {{{', '.join(f.levels)}}}" for f in spec.filters)
    source = (
        f"dataset {spec.dataset}"
        if spec.module_version is None
        else f"module {spec.dataset} v{spec.module_version}"
    )
    return (
        f"{what}{by}{where}\n"
        f"agreement {spec.agreement_id}, {source}, rho {spec.rho:g} per node, "
        f"status {result.status}"
    )


def _table(result: QueryResult) -> str:
    measure = result.spec.measure
    header = [*(DIM_TEXT.get(d, d) for d in result.group_by), "estimate", "95% interval", "status"]
    rows: list[list[str]] = []
    for cell in result.cells:
        keys = [_key_label(dim, code) for dim, code in zip(result.group_by, cell.key, strict=True)]
        if cell.status == "ok" and cell.estimate is not None:
            estimate = _number(cell.estimate, measure)
            if cell.ci95_low is not None and cell.ci95_high is not None:
                low, high = _number(cell.ci95_low, measure), _number(cell.ci95_high, measure)
                interval = f"{low} – {high}"
            else:
                interval = ""
        else:
            estimate, interval = "—", "—"
        rows.append([*keys, estimate, interval, _status_text(cell)])

    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    numeric = {len(result.group_by), len(result.group_by) + 1}

    def line(row: list[str]) -> str:
        parts = [
            text.rjust(width) if i in numeric else text.ljust(width)
            for i, (text, width) in enumerate(zip(row, widths, strict=True))
        ]
        return "  ".join(parts).rstrip()

    out = [_title(result), "", line(header), "  ".join("-" * w for w in widths)]
    out.extend(line(row) for row in rows)
    out.append("")
    out.extend(_footer(result))
    return "\n".join(out) + "\n"


def _footer(result: QueryResult) -> list[str]:
    lines = ["nodes:"]
    for node in result.nodes:
        country = _key_label("country", node.country) if node.country else "country unknown"
        outcome = f"{node.outcome} ({node.error_code})" if node.error_code else node.outcome
        lines.append(f"  {node.node_id:<24} {country:<18} {outcome}{_guarantee(node)}")
    missing = [n.node_id for n in result.nodes if n.outcome != "ok"]
    if result.status == "partial":
        lines.append(
            f"WARNING: partial result: {len(missing)} of {len(result.nodes)} nodes did not "
            f"answer ({', '.join(missing)}); their data are not included and never imputed."
        )
    elif result.status == "failed":
        lines.append("WARNING: no node answered; there is no estimate.")
    suppressed = sum(1 for c in result.cells if c.status == "suppressed")
    if suppressed:
        lines.append(
            f"{suppressed} of {len(result.cells)} cells suppressed: shown without a number."
        )
    if result.aggregation == "secure":
        lines.append(
            "Secure aggregation: the hub saw only the total over the nodes, which carries the"
            " noise of one central release."
        )
    elif result.aggregation_note:
        lines.append(f"Each node added its own full noise ({result.aggregation_note}).")
    if result.grid is not None:
        what = "candidates" if result.spec.measure == "quantile" else "bin edges"
        grid = ", ".join(f"{g:g}" for g in result.grid)
        lines.append(f"Public grid ({len(result.grid)} {what}): {grid}.")
    if result.grid_resolution is not None:
        lines.append(
            f"Grid resolution {result.grid_resolution:g}: each quantile interval covers the"
            " data's quantile and is at least one grid bin wide."
        )
    lines.append(
        "Intervals describe the differential-privacy noise only, not survey sampling error."
    )
    return lines


def _guarantee(node: NodeStatus) -> str:
    """A node's stated guarantee: rho (zCDP), the (epsilon, delta) it implies, the noise."""
    if node.rho is None:
        return ""
    text = f"  rho {node.rho:g}"
    if node.epsilon is not None and node.delta is not None:
        text += f" (epsilon {node.epsilon:.3g} at delta {node.delta:g})"
    if node.mechanism is not None and node.noise_scale is not None:
        text += f", {node.mechanism.replace('_', ' ')} noise sd {node.noise_scale:.4g}"
    return text


def _csv(result: QueryResult) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(safe_row([*result.group_by, *CSV_COLUMNS]))
    for cell in result.cells:
        writer.writerow(
            safe_row(
                [
                    *cell.key,
                    _plain(cell.estimate),
                    _plain(cell.ci95_low),
                    _plain(cell.ci95_high),
                    cell.status,
                    cell.reason or "",
                    ";".join(cell.nodes),
                    *cell_guarantee(result, cell).values(),
                ]
            )
        )
    return buffer.getvalue()


def _plain(value: float | None) -> str:
    return "" if value is None else repr(float(value))
