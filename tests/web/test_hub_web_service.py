"""Pure parts of the hub's pages: form parsing, result view, chart geometry, files."""

import csv
from datetime import UTC, datetime
from io import BytesIO, StringIO
from uuid import uuid4

import pytest
from openpyxl import load_workbook

from contracts.v1 import QueryResult, QuerySpec, ResultCell
from contracts.v1.release import BIN_DIM
from hub.web import builder, downloads, results, service
from hub.web.builder import FormErrors
from hub.web.exceptions import FormInvalid


def histogram_result() -> QueryResult:
    spec = QuerySpec(
        agreement_id="a",
        dataset="d",
        measure="histogram",
        column="income",
        group_by=("sex",),
        rho=0.1,
    )
    cells = (
        ResultCell(
            key=("female", "[0, 10)"),
            status="ok",
            estimate=12.0,
            ci95_low=8.0,
            ci95_high=16.0,
            nodes=("n1",),
        ),
        ResultCell(
            key=("female", "[10, 20)"),
            status="suppressed",
            reason="below_min_cell_size",
            nodes=("n1",),
        ),
        ResultCell(
            key=("male", "[0, 10)"),
            status="ok",
            estimate=-1.5,
            ci95_low=-5.0,
            ci95_high=2.0,
            nodes=("n1",),
        ),
    )
    return QueryResult(
        query_id=uuid4(),
        spec=spec,
        group_by=("sex", BIN_DIM),
        status="complete",
        nodes=(),
        cells=cells,
        created_at=datetime.now(UTC),
    )


def test_result_view_names_every_key_part_and_draws_whiskers() -> None:
    view = results.result_view(
        result=histogram_result(), lang="en", contracts={}, node_names={}, sdmx_refusal=None
    )
    assert view.columns == ("sex", BIN_DIM)
    assert [r.estimate for r in view.rows] == ["12", "", "-2"]
    chart = view.chart
    assert chart is not None
    bars = chart.bars
    assert [b.suppressed for b in bars] == [False, True, False]
    # A negative estimate is drawn left of zero; whiskers span the interval; five ticks
    # evenly spaced over a round range that holds every interval.
    zero = bars[1].x0
    assert bars[2].x0 < zero
    low, high = bars[0].low, bars[0].high
    assert low is not None
    assert high is not None
    assert low < bars[0].x0 + bars[0].width < high
    assert chart.ticks == ("-10", "0", "10", "20", "30")
    assert bars[0].label == "female · [0, 10)"


def test_shares_read_as_percent_in_the_readers_digits() -> None:
    spec = QuerySpec(
        agreement_id="a", dataset="d", measure="share", column="v", value="yes", rho=0.1
    )
    result = QueryResult(
        query_id=uuid4(),
        spec=spec,
        group_by=("country",),
        status="complete",
        nodes=(),
        cells=(
            ResultCell(
                key=("050",),
                status="ok",
                estimate=0.239,
                ci95_low=0.2,
                ci95_high=0.28,
                nodes=("n1",),
            ),
        ),
        created_at=datetime.now(UTC),
    )
    view = results.result_view(
        result=result, lang="bn", contracts={}, node_names={}, sdmx_refusal=None
    )
    assert view.rows[0].key == ("বাংলাদেশ",)
    assert view.rows[0].estimate == "২৩.৯%"


def test_csv_and_xlsx_carry_intervals_and_say_suppressed() -> None:
    result = histogram_result()
    rows = list(csv.reader(StringIO(downloads.to_csv(result).decode("utf-8-sig"))))
    # "@bin" would be a formula to a spreadsheet: the header shows it, never runs it.
    assert rows[0] == ["sex", "'" + BIN_DIM, *downloads.VALUE_COLUMNS]
    assert rows[1][:5] == ["female", "[0, 10)", "12.0", "8.0", "16.0"]
    assert rows[2][2:7] == ["", "", "", "suppressed", "below_min_cell_size"]
    book = load_workbook(BytesIO(downloads.to_xlsx(result)))
    assert book["result"].max_row == 4
    assert {r[0].value: r[1].value for r in book["query"].iter_rows()}["measure"] == "histogram"


def test_query_form_fields_become_a_spec() -> None:
    form = {
        "agreement_id": "a",
        "dataset": "d",
        "measure": "quantile",
        "column": "income",
        "value": "ignored",
        "group_by_1": "sex",
        "group_by_2": "",
        "group_by_3": "country",
        "filter_column_1": "group",
        "filter_levels_1": ["dalit", "disability"],
        "rho": "0.2",
        "quantiles": "0.25, 0.5",
        "weighted": "yes",
    }
    spec = builder.spec_from_form(form)
    assert spec.group_by == ("sex", "country")
    assert spec.filters[0].levels == ("dalit", "disability")
    assert spec.value is None  # fields the measure does not use are not read
    assert spec.quantiles == (0.25, 0.5)
    assert spec.weighted is False
    with pytest.raises(FormErrors) as bad:
        builder.spec_from_form({"measure": "quantile", "quantiles": "half", "rho": "x"})
    assert bad.value.errors["quantiles"].value == "half"
    assert bad.value.errors["rho"].code == "rho_invalid"
    assert bad.value.errors["column"].code == "column_needed"


def test_drafting_form_becomes_terms() -> None:
    terms = service.terms_from_form(
        {
            "agreement_id": "mou-1",
            "title": "T",
            "purpose": "P",
            "parties": "Secretariat | secretariat\n\nCSO A | cso | 524 | np-a\n",
            "datasets": "survey:2",
            "measures": ["count"],
            "columns": "",
            "dims": "sex,group",
            "rho_per_query_max": "0.1",
            "rho_budget": "1",
            "analyst_organisations": "nso",
            "valid_from": "2026-01-01",
            "valid_until": "2026-12-31",
        },
        hub_id="hub-1",
    )
    assert terms.node_ids == ("np-a",)
    # The form's "valid until" day is in force, included: the exclusive bound is the next day.
    assert terms.valid_until == datetime(2027, 1, 1, tzinfo=UTC)
    assert terms.datasets[0].contract_version == 2
    assert terms.dims == ("sex", "group")
    assert (terms.aggregation, terms.collusion) == ("per_node", 0)
    with pytest.raises(FormInvalid, match="dataset"):
        service.terms_from_form({"parties": "A | cso", "datasets": "survey"}, hub_id="h")


def test_drafting_form_asks_for_secure_aggregation() -> None:
    form = {
        "agreement_id": "mou-1",
        "title": "T",
        "purpose": "P",
        "parties": "Secretariat | secretariat\nCSO A | cso | 524 | np-a\nCSO B | cso | 524 | np-b",
        "datasets": "survey:1",
        "measures": ["count", "share"],
        "rho_per_query_max": "0.1",
        "rho_budget": "1",
        "valid_from": "2026-01-01",
        "valid_until": "2026-12-31",
        "aggregation": "secure",
        "collusion": "1",
    }
    terms = service.terms_from_form(form, hub_id="hub-1")
    assert (terms.aggregation, terms.collusion) == ("secure", 1)
    with pytest.raises(FormInvalid, match="aggregation"):
        service.terms_from_form({**form, "aggregation": "magic"}, hub_id="hub-1")
    with pytest.raises(FormInvalid, match="collusion"):
        service.terms_from_form({**form, "collusion": "-1"}, hub_id="hub-1")
