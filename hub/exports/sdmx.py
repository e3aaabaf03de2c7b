"""SDMX-CSV 2.0 (SDMX 3.0) writer and checker for the shipped LNOB structure (DSD_LNOB).

One row per observation: `STRUCTURE=dataflow`, `STRUCTURE_ID=SAUTI:DF_LNOB(1.0.0)`,
`ACTION=I` (information), the dimensions in the structure's order (REF_AREA as UN M49,
INDICATOR, POP_GROUP, SEX, AGE, EDUCATION, TIME_PERIOD; `_T` where a result is not broken
down by that dimension), OBS_VALUE, then the attributes. Estimates carry `OBS_STATUS=E` and
the 95% interval in LOWER_BOUND/UPPER_BOUND; suppressed cells carry `OBS_STATUS=Q` and an
empty OBS_VALUE. Shares are written as percentages (`UNIT_MEASURE=PT`).
"""

import csv
import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from contracts.spreadsheet import safe_cell
from contracts.v1 import QueryResult
from hub.exports.exceptions import AreaUnknown, MixedAreas, NotInStructure
from hub.exports.structure import DATAFLOW, DIM_MAP, TOTAL, load_structure

Dissemination = Literal["public", "partners", "restricted"]
CONF_STATUS: dict[str, str] = {"public": "F", "partners": "S", "restricted": "C"}
HEADER_PREFIX = ("STRUCTURE", "STRUCTURE_ID", "ACTION")


@dataclass(frozen=True)
class Observation:
    """One SDMX observation; `dims` holds the non-total breakdown codes (e.g. SEX=F)."""

    ref_area: str
    indicator: str
    time_period: str
    status: Literal["A", "E", "Q"]
    unit: str
    conf: str
    value: float | None = None
    ci95_low: float | None = None
    ci95_high: float | None = None
    dims: Mapping[str, str] = field(default_factory=dict)
    comment: str | None = None


def _number(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return ""
    return repr(round(value, 6))


def write_sdmx_csv(observations: Sequence[Observation]) -> str:
    """The SDMX-CSV 2.0 text; every code is checked against the structure first."""
    structure = load_structure()
    data_dims = [d for d in structure.dimensions if d != "TIME_PERIOD"]
    columns = [
        *HEADER_PREFIX,
        *structure.dimensions,
        *structure.measures,
        *structure.attributes,
    ]
    seen: set[tuple[str, ...]] = set()
    rows: list[dict[str, str]] = []
    for obs in observations:
        unknown = set(obs.dims) - set(data_dims)
        if unknown:
            raise NotInStructure(f"dimension {sorted(unknown)[0]!r} is not in the structure")
        values = {
            "REF_AREA": obs.ref_area,
            "INDICATOR": obs.indicator,
            **{d: obs.dims.get(d, TOTAL) for d in data_dims if d not in ("REF_AREA", "INDICATOR")},
        }
        for dim, code in values.items():
            if code not in structure.codes_of(dim):
                raise NotInStructure(f"code {code!r} is not declared for {dim}")
        key = (*(values[d] for d in data_dims), obs.time_period)
        if key in seen:
            raise NotInStructure("two observations share one series key and period")
        seen.add(key)
        suppressed = obs.status == "Q"
        rows.append(
            {
                "STRUCTURE": "dataflow",
                "STRUCTURE_ID": DATAFLOW,
                "ACTION": "I",
                **values,
                "TIME_PERIOD": obs.time_period,
                "OBS_VALUE": "" if suppressed else _number(obs.value),
                "OBS_STATUS": obs.status,
                "LOWER_BOUND": "" if suppressed else _number(obs.ci95_low),
                "UPPER_BOUND": "" if suppressed else _number(obs.ci95_high),
                "UNIT_MEASURE": obs.unit,
                "CONF_STATUS": obs.conf,
                # The only free text (a country team's answer, a query id): never a formula.
                "COMMENT_OBS": safe_cell(obs.comment or ""),
            }
        )
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def unit_of(measure: str) -> str:
    return {"count": "PS", "share": "PT", "histogram": "PS"}.get(measure, "NUMBER")


def scale_of(measure: str) -> float:
    """Shares are proportions on the wire and percentages in SDMX."""
    return 100.0 if measure == "share" else 1.0


def query_result_to_sdmx_csv(
    *,
    result: QueryResult,
    indicator: str,
    ref_areas: Mapping[str, str],
    time_period: str | None = None,
    dissemination: Dissemination = "restricted",
) -> str:
    """One query's combined cells as SDMX-CSV 2.0 under the shipped LNOB dataflow.

    - `indicator`: a code of CL_INDICATOR (`ADHOC` for an analyst's own query; the query id
      then goes in COMMENT_OBS).
    - `ref_areas`: node_id -> UN M49 code (3 digits, as in the federation registry). A cell's
      REF_AREA is its `country` key when the query is grouped by country, else the one area
      of the nodes it combines (several countries in one cell are refused: `MixedAreas`).
    - `time_period`: defaults to the year the query was made.
    - `dissemination`: the agreement's level, written as CONF_STATUS (F/S/C); defaults to the
      most cautious, `restricted`.

    Dims and single-level filters on dataset columns map to POP_GROUP, SEX, AGE, EDUCATION
    (see `hub.exports.structure.DIM_MAP`); anything else raises `NotInStructure`.
    """
    spec = result.spec
    fixed: dict[str, str] = {}
    for flt in spec.filters:
        if flt.column in ("country", "node"):
            continue
        mapped = DIM_MAP.get(flt.column)
        if mapped is None or len(flt.levels) != 1:
            raise NotInStructure(
                f"the filter on {flt.column!r} cannot be expressed in the structure"
            )
        fixed[mapped[0]] = _code(flt.column, flt.levels[0])
    for dim in result.group_by:
        if dim not in ("country", "node") and dim not in DIM_MAP:
            raise NotInStructure(f"dimension {dim!r} is not in the structure")
    period = time_period or str(result.created_at.year)
    scale = scale_of(spec.measure)
    observations = []
    for cell in result.cells:
        dims = dict(fixed)
        area: str | None = None
        for dim, level in zip(result.group_by, cell.key, strict=True):
            if dim == "country":
                area = level
            elif dim == "node":
                area = _area(ref_areas, level)
            else:
                dims[DIM_MAP[dim][0]] = _code(dim, level)
        if area is None:
            areas = {_area(ref_areas, node) for node in cell.nodes}
            if len(areas) != 1:
                raise MixedAreas()
            area = areas.pop()
        ok = cell.status == "ok" and cell.estimate is not None
        observations.append(
            Observation(
                ref_area=area,
                indicator=indicator,
                time_period=period,
                status="E" if ok else "Q",
                unit=unit_of(spec.measure),
                conf=CONF_STATUS[dissemination],
                value=cell.estimate * scale if ok and cell.estimate is not None else None,
                ci95_low=cell.ci95_low * scale if ok and cell.ci95_low is not None else None,
                ci95_high=cell.ci95_high * scale if ok and cell.ci95_high is not None else None,
                dims=dims,
                comment=f"query {result.query_id}" if indicator == "ADHOC" else None,
            )
        )
    return write_sdmx_csv(observations)


def _code(column: str, level: str) -> str:
    dim, levels = DIM_MAP[column]
    if level not in levels:
        raise NotInStructure(f"a level of {column!r} has no code in {dim}")
    return levels[level]


def _area(ref_areas: Mapping[str, str], node_id: str) -> str:
    area = ref_areas.get(node_id)
    if area is None:
        raise AreaUnknown(node_id)
    return area


def check_sdmx_csv(text: str) -> list[str]:
    """Problems of an SDMX-CSV 2.0 text against the structure (empty when valid)."""
    structure = load_structure()
    reader = csv.DictReader(io.StringIO(text))
    header = tuple(reader.fieldnames or ())
    expected = (*HEADER_PREFIX, *structure.dimensions, *structure.measures, *structure.attributes)
    if header != expected:
        return [f"header {header} is not {expected}"]
    problems = []
    for number, row in enumerate(reader, start=2):
        if row["STRUCTURE"] != "dataflow" or row["STRUCTURE_ID"] != DATAFLOW:
            problems.append(f"row {number}: unknown structure")
        if row["ACTION"] not in ("I", "A", "R", "D"):
            problems.append(f"row {number}: unknown action")
        for component in (*structure.dimensions, *structure.attributes):
            if component in structure.codelist_of and row[component] not in structure.codes_of(
                component
            ):
                problems.append(f"row {number}: {component} code not declared")
        status, value = row["OBS_STATUS"], row["OBS_VALUE"]
        if status == "Q" and (value or row["LOWER_BOUND"] or row["UPPER_BOUND"]):
            problems.append(f"row {number}: a suppressed observation carries a value")
        if status == "E":
            try:
                low, mid, high = (
                    float(row["LOWER_BOUND"]),
                    float(value),
                    float(row["UPPER_BOUND"]),
                )
            except ValueError:
                problems.append(f"row {number}: an estimate without value and interval")
                continue
            if not low <= mid <= high:
                problems.append(f"row {number}: the value lies outside its interval")
        if not row["TIME_PERIOD"]:
            problems.append(f"row {number}: no time period")
    return problems
