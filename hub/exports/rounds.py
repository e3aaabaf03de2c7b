"""A round's results as flat tables (CSV, XLSX) and as SDMX-CSV 2.0 observations."""

import csv
import io
from collections.abc import Sequence

from openpyxl import Workbook

from contracts.spreadsheet import safe_cell, safe_row
from contracts.v1.result import GUARANTEE_COLUMNS, guarantee_text
from hub.assessments.schemas import RoundResults
from hub.assessments.templates import ChoiceAnswer, NumberAnswer, Template
from hub.exports.exceptions import NotInStructure
from hub.exports.sdmx import CONF_STATUS, Observation, scale_of, unit_of, write_sdmx_csv
from hub.exports.structure import DIM_MAP

COLUMNS = (
    "round_id",
    "period",
    "country",
    "indicator",
    "kind",
    "breakdown",
    "levels",
    "measure",
    "status",
    "estimate",
    "ci95_low",
    "ci95_high",
    "suppression_reason",
    "answer",
    "score",
    "dissemination",
    *GUARANTEE_COLUMNS,
)


def rows(results: RoundResults, template: Template) -> list[dict[str, object]]:
    """One row per DP estimate (suppressed ones with empty numbers) and per answer."""
    out: list[dict[str, object]] = []
    for v in results.values:
        out.append(
            {
                "round_id": results.round_id,
                "period": results.period,
                "country": v.country,
                "indicator": v.indicator_id,
                "kind": "dp",
                "breakdown": "+".join(v.breakdown),
                "levels": "+".join(v.levels),
                "measure": v.measure,
                "status": v.status,
                "estimate": v.estimate if v.status == "ok" else None,
                "ci95_low": v.ci95_low if v.status == "ok" else None,
                "ci95_high": v.ci95_high if v.status == "ok" else None,
                "suppression_reason": v.reason if v.status != "ok" else None,
                "answer": None,
                "score": None,
                "dissemination": results.dissemination,
                # Each answering node's rho, (epsilon, delta), mechanism and noise scale.
                **guarantee_text(v.nodes),
            }
        )
    for a in results.answers:
        out.append(
            {
                "round_id": results.round_id,
                "period": results.period,
                "country": a.country,
                "indicator": a.indicator_id,
                "kind": "self_reported",
                "breakdown": "",
                "levels": "",
                "measure": "answer",
                "status": "answered",
                "estimate": None,
                "ci95_low": None,
                "ci95_high": None,
                "suppression_reason": None,
                "answer": a.value,
                "score": a.score,
                "dissemination": results.dissemination,
                **dict.fromkeys(GUARANTEE_COLUMNS),
            }
        )
    return out


def _cell(value: object) -> str:
    return "" if value is None else safe_cell(str(value))


def to_csv(results: RoundResults, template: Template) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    for row in rows(results, template):
        writer.writerow({k: _cell(v) for k, v in row.items()})
    return buffer.getvalue()


def to_xlsx(results: RoundResults, template: Template) -> bytes:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "results"
    sheet.append(list(COLUMNS))
    for row in rows(results, template):
        # Answers are typed by country teams: shown as text, never run as formulas.
        sheet.append(safe_row([row[c] for c in COLUMNS]))
    about = book.create_sheet("about")
    about.append(safe_row(["round_id", results.round_id]))
    about.append(safe_row(["template", f"{results.template_id} v{results.template_version}"]))
    about.append(safe_row(["period", results.period]))
    about.append(["dissemination", results.dissemination])
    about.append(["note", "DP estimates with 95% intervals; suppressed cells have no estimate."])
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def observations(results: RoundResults, template: Template) -> Sequence[Observation]:
    """SDMX observations: DP estimates (E, or Q when suppressed) and answers (A)."""
    conf = CONF_STATUS[results.dissemination]
    out = []
    for v in results.values:
        dims = {}
        for dim, level in zip(v.breakdown, v.levels, strict=True):
            mapped = DIM_MAP.get(dim)
            if mapped is None or level not in mapped[1]:
                raise NotInStructure(f"breakdown {dim!r} has no code in the structure")
            dims[mapped[0]] = mapped[1][level]
        ok = v.status == "ok" and v.estimate is not None
        scale = scale_of(v.measure)
        out.append(
            Observation(
                ref_area=v.country,
                indicator=v.indicator_id,
                time_period=results.period,
                status="E" if ok else "Q",
                unit=unit_of(v.measure),
                conf=conf,
                value=v.estimate * scale if ok and v.estimate is not None else None,
                ci95_low=v.ci95_low * scale if ok and v.ci95_low is not None else None,
                ci95_high=v.ci95_high * scale if ok and v.ci95_high is not None else None,
                dims=dims,
            )
        )
    for a in results.answers:
        indicator = template.indicator(a.indicator_id)
        spec = getattr(indicator, "answer", None)
        number = isinstance(spec, NumberAnswer)
        out.append(
            Observation(
                ref_area=a.country,
                indicator=a.indicator_id,
                time_period=results.period,
                status="A",
                unit="NUMBER" if number else "SCORE",
                conf=conf,
                value=float(a.value) if number else a.score,
                comment=str(a.value) if isinstance(spec, ChoiceAnswer) else None,
            )
        )
    return out


def to_sdmx(results: RoundResults, template: Template) -> str:
    return write_sdmx_csv(observations(results, template))
