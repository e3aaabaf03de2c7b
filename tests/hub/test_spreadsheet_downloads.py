"""Every CSV/XLSX the hub, the node and the `sauti` command write shows formula text, never runs it.

A level typed as `=HYPERLINK("http://x")` in a codebook reaches results, downloads and
assessment exports; an actor or detail reaches audit exports. Each writer must prefix such
cells (contracts.spreadsheet.safe_cell) and keep numbers, negative ones too, as numbers.
"""

import csv
import io
from datetime import UTC, datetime
from uuid import UUID

from openpyxl import load_workbook

from contracts.v1 import QueryResult, QuerySpec, ResultCell
from contracts.v1.audit import csv_chunks, next_entry
from hub.assessments.schemas import AnswerRead, ResultValue, RoundResults
from hub.assessments.templates import shipped_templates
from hub.exports import rounds
from hub.exports.sdmx import Observation, write_sdmx_csv
from hub.web import downloads
from sauti.render import render_result

FORMULA = '=HYPERLINK("http://x","click")'
SAFE = "'" + FORMULA


def _result() -> QueryResult:
    spec = QuerySpec(
        agreement_id="lnob-2026",
        dataset="lnob_household",
        measure="sum",
        column="income",
        group_by=("group",),
        rho=0.1,
    )
    return QueryResult(
        query_id=UUID("12345678-1234-5678-1234-567812345678"),
        spec=spec,
        status="complete",
        group_by=("group",),
        cells=(
            ResultCell(
                key=(FORMULA,),
                status="ok",
                estimate=-12.5,
                ci95_low=-30.0,
                ci95_high=5.0,
                nodes=("np-node",),
            ),
            ResultCell(key=("@SUM(A1)",), status="suppressed", reason="below_min_cell_size"),
        ),
        nodes=(),
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
    )


def _csv_rows(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))


def test_result_downloads_csv_and_xlsx() -> None:
    result = _result()
    rows = _csv_rows(downloads.to_csv(result).decode("utf-8"))
    assert rows[1][0] == SAFE
    assert rows[1][1] == "-12.5"  # a negative estimate is a number, not a formula
    assert rows[2][0] == "'@SUM(A1)"
    book = load_workbook(io.BytesIO(downloads.to_xlsx(result)))
    sheet = book["result"]
    assert sheet["A2"].value == SAFE
    assert sheet["A2"].data_type == "s"
    assert sheet["B2"].value == -12.5
    assert sheet["B2"].data_type == "n"
    assert not any(c.data_type == "f" for row in sheet.iter_rows() for c in row)


def test_sauti_query_csv() -> None:
    rows = _csv_rows(render_result(_result(), fmt="csv"))
    assert rows[1][0] == SAFE
    assert rows[1][1] == "-12.5"


def test_assessment_exports_csv_xlsx_and_sdmx_comment() -> None:
    (template,) = shipped_templates()
    results = RoundResults(
        round_id="r1",
        template_id=template.id,
        template_version=template.version,
        period="2026",
        dissemination="partners",
        countries=("524",),
        values=(
            ResultValue(
                indicator_id="HEALTH_ACCESS",
                country="524",
                measure="share",
                status="ok",
                breakdown=("group",),
                levels=(FORMULA,),
                estimate=0.4,
                ci95_low=-0.01,
                ci95_high=0.8,
            ),
        ),
        answers=(
            AnswerRead(
                round_id="r1",
                country="524",
                indicator_id="MOU_SIGNED",
                value="+cmd|' /C calc'!A0",
                score=0,
                answered_by="-team",
                answered_at=datetime(2026, 1, 1, tzinfo=UTC),
            ),
        ),
        complete=True,
    )
    rows = _csv_rows(rounds.to_csv(results, template))
    header = rows[0]
    assert rows[1][header.index("levels")] == SAFE
    assert rows[1][header.index("ci95_low")] == "-0.01"
    assert rows[2][header.index("answer")] == "'+cmd|' /C calc'!A0"
    sheet = load_workbook(io.BytesIO(rounds.to_xlsx(results, template)))["results"]
    cells = [c for row in sheet.iter_rows() for c in row]
    assert not any(c.data_type == "f" for c in cells)
    assert SAFE in {c.value for c in cells}
    assert -0.01 in {c.value for c in cells}
    observation = Observation(
        ref_area="524",
        indicator="MOU_SIGNED",
        time_period="2026",
        status="A",
        unit="SCORE",
        conf="F",
        value=0,
        comment="=1+1",
    )
    rows = _csv_rows(write_sdmx_csv([observation]))
    assert rows[1][rows[0].index("COMMENT_OBS")] == "'=1+1"


def test_audit_csv_export() -> None:
    entry = next_entry(
        prev_seq=0,
        prev_hash="0" * 64,
        actor="=cmd",
        action="contract_published",
        object="dataset:x",
        details={"version": 1},
        at=datetime(2026, 1, 1, tzinfo=UTC),
    )
    rows = _csv_rows("".join(csv_chunks([entry])))
    assert rows[1][2] == "'=cmd"
