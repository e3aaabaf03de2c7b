"""SDMX-CSV 2.0 export against the shipped structure (DSD_LNOB): parsed back and validated."""

import csv
import io
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from uuid import uuid4

import pytest

from contracts.v1 import Filter, NodeStatus, QueryResult, QuerySpec, ResultCell
from hub.exports.exceptions import AreaUnknown, MixedAreas, NotInStructure
from hub.exports.sdmx import check_sdmx_csv, query_result_to_sdmx_csv
from hub.exports.structure import STRUCTURE_FILE, check_mapping, load_structure

LNOB_M49 = {"050", "356", "404", "454", "524", "566", "704"}


def result(group_by: tuple[str, ...], cells: list[ResultCell], **spec: object) -> QueryResult:
    fields: dict[str, object] = {
        "agreement_id": "lnob-2026",
        "dataset": "lnob_household",
        "measure": "share",
        "column": "violence_12m",
        "value": "yes",
        "group_by": group_by,
        "rho": 0.1,
        **spec,
    }
    return QueryResult(
        query_id=uuid4(),
        spec=QuerySpec.model_validate(fields),
        group_by=group_by,
        status="complete",
        nodes=(
            NodeStatus(node_id="np", country="524", outcome="ok"),
            NodeStatus(node_id="bd", country="050", outcome="ok"),
        ),
        cells=tuple(cells),
        created_at=datetime(2026, 5, 1, tzinfo=UTC),
    )


def ok(key: tuple[str, ...], estimate: float, nodes: tuple[str, ...]) -> ResultCell:
    return ResultCell(
        key=key,
        status="ok",
        estimate=estimate,
        ci95_low=estimate - 0.05,
        ci95_high=estimate + 0.05,
        nodes=nodes,
    )


def test_structure_file_is_sdmx_ml_3_and_declares_the_lnob_areas() -> None:
    root = ET.parse(STRUCTURE_FILE).getroot()
    assert root.tag == "{http://www.sdmx.org/resources/sdmxml/schemas/v3_0/message}Structure"
    structure = load_structure()
    assert set(structure.codes_of("REF_AREA")) == LNOB_M49
    assert structure.dimensions[-1] == "TIME_PERIOD"
    assert {"OBS_STATUS", "LOWER_BOUND", "UPPER_BOUND"} <= set(structure.attributes)
    assert {"E", "Q", "A"} <= set(structure.codes_of("OBS_STATUS"))
    assert check_mapping() == []


def test_shipped_template_indicators_are_declared_codes() -> None:
    from hub.assessments.templates import shipped_templates  # noqa: PLC0415

    codes = load_structure().codes_of("INDICATOR")
    for template in shipped_templates():
        assert {i.id for i in template.indicators} <= set(codes)


def test_query_result_round_trips_with_statuses_and_intervals() -> None:
    cells = [
        ok(("524", "female"), 0.25, ("np",)),
        ok(("524", "male"), 0.2, ("np",)),
        ResultCell(
            key=("050", "female"), status="suppressed", reason="below_min_cell_size", nodes=("bd",)
        ),
        ok(("050", "male"), 0.4, ("bd",)),
    ]
    text = query_result_to_sdmx_csv(
        result=result(("country", "sex"), cells),
        indicator="VIOLENCE_12M",
        ref_areas={"np": "524", "bd": "050"},
        dissemination="partners",
    )
    assert check_sdmx_csv(text) == []
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0])[:3] == ["STRUCTURE", "STRUCTURE_ID", "ACTION"]
    assert {r["STRUCTURE_ID"] for r in rows} == {"SAUTI:DF_LNOB(1.0.0)"}
    by_key = {(r["REF_AREA"], r["SEX"]): r for r in rows}
    assert by_key[("524", "F")]["OBS_STATUS"] == "E"
    assert float(by_key[("524", "F")]["OBS_VALUE"]) == pytest.approx(25.0)
    assert float(by_key[("524", "F")]["LOWER_BOUND"]) == pytest.approx(20.0)
    assert by_key[("524", "F")]["UNIT_MEASURE"] == "PT"
    assert by_key[("524", "F")]["POP_GROUP"] == "_T"
    suppressed = by_key[("050", "F")]
    assert suppressed["OBS_STATUS"] == "Q"
    assert suppressed["OBS_VALUE"] == suppressed["LOWER_BOUND"] == ""
    assert {r["TIME_PERIOD"] for r in rows} == {"2026"}
    assert {r["CONF_STATUS"] for r in rows} == {"S"}


def test_ref_area_from_nodes_and_single_level_filters() -> None:
    cells = [ok(("dalit",), 0.3, ("np",)), ok(("none",), 0.1, ("np",))]
    spec_filters = (Filter(column="sex", levels=("female",)),)
    text = query_result_to_sdmx_csv(
        result=result(
            ("group",), cells, filters=spec_filters, measure="count", column=None, value=None
        ),
        indicator="ADHOC",
        ref_areas={"np": "524"},
        time_period="2026-Q2",
    )
    assert check_sdmx_csv(text) == []
    rows = list(csv.DictReader(io.StringIO(text)))
    assert {(r["REF_AREA"], r["POP_GROUP"], r["SEX"]) for r in rows} == {
        ("524", "DALIT", "F"),
        ("524", "NONE", "F"),
    }
    assert all(r["COMMENT_OBS"].startswith("query ") for r in rows)
    assert {r["CONF_STATUS"] for r in rows} == {"C"}  # the cautious default


def test_what_the_structure_cannot_say_is_refused() -> None:
    mixed = result(("sex",), [ok(("female",), 0.3, ("np", "bd"))])
    with pytest.raises(MixedAreas):
        query_result_to_sdmx_csv(
            result=mixed, indicator="ADHOC", ref_areas={"np": "524", "bd": "050"}
        )
    with pytest.raises(AreaUnknown):
        query_result_to_sdmx_csv(result=mixed, indicator="ADHOC", ref_areas={"np": "524"})
    district = result(("country", "district"), [ok(("524", "Doti"), 0.3, ("np",))])
    with pytest.raises(NotInStructure):
        query_result_to_sdmx_csv(result=district, indicator="ADHOC", ref_areas={"np": "524"})
    good = result(("country",), [ok(("524",), 0.3, ("np",))])
    with pytest.raises(NotInStructure):
        query_result_to_sdmx_csv(result=good, indicator="NOT_AN_INDICATOR", ref_areas={})


def test_checker_finds_broken_files() -> None:
    good = query_result_to_sdmx_csv(
        result=result(("country",), [ok(("524",), 0.3, ("np",))]),
        indicator="VIOLENCE_12M",
        ref_areas={},
    )
    assert check_sdmx_csv(good) == []
    assert check_sdmx_csv(good.replace(",524,", ",999,"))
    assert check_sdmx_csv(good.replace(",E,", ",Q,"))
    assert check_sdmx_csv("A,B\r\n1,2\r\n")
