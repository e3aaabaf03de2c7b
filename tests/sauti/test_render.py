"""Unit tests of `sauti.render`: every cell shown, suppressed cells without numbers."""

import csv
import io
import json
from datetime import UTC, datetime
from typing import Literal
from uuid import UUID

import pytest

from contracts.v1 import NodeStatus, QueryResult, QuerySpec, ResultCell
from sauti.render import render_result

QUERY_ID = UUID("12345678-1234-5678-1234-567812345678")


def make_result(
    *, measure: str = "count", status: Literal["complete", "partial", "failed"] = "complete"
) -> QueryResult:
    if measure == "share":
        spec = QuerySpec(
            agreement_id="lnob-2026",
            dataset="lnob_household",
            measure="share",
            column="violence_12m",
            value="yes",
            group_by=("group", "country"),
            rho=0.1,
        )
        ok = ResultCell(
            key=("sex_worker", "050"),
            status="ok",
            estimate=0.41234,
            ci95_low=0.38,
            ci95_high=0.4449,
            nodes=("bd-node",),
        )
    else:
        spec = QuerySpec(
            agreement_id="lnob-2026",
            dataset="lnob_household",
            measure="count",
            group_by=("group", "country"),
            rho=0.1,
        )
        ok = ResultCell(
            key=("sex_worker", "050"),
            status="ok",
            estimate=1234.4,
            ci95_low=1220.2,
            ci95_high=1248.6,
            nodes=("bd-node",),
        )
    suppressed = ResultCell(
        key=("indigenous", "524"),
        status="suppressed",
        reason="below_min_cell_size",
        nodes=("np-node",),
    )
    nodes = [
        NodeStatus(
            node_id="bd-node",
            country="050",
            outcome="ok",
            rho=0.1,
            epsilon=2.6,
            delta=1e-7,
            mechanism="discrete_gaussian",
            noise_scale=2.25,
        ),
        # A node whose release predates the guarantee fields.
        NodeStatus(node_id="np-node", country="524", outcome="ok"),
    ]
    if status == "partial":
        nodes.append(
            NodeStatus(
                node_id="ke-node",
                country="404",
                outcome="refused",
                error_code="budget_exhausted",
                message="the budget is spent",
            )
        )
    return QueryResult(
        query_id=QUERY_ID,
        spec=spec,
        group_by=spec.group_by,
        status=status,
        nodes=tuple(nodes),
        cells=(ok, suppressed),
        created_at=datetime(2026, 11, 27, tzinfo=UTC),
    )


def test_table_counts_are_integers_and_suppressed_cells_have_no_number() -> None:
    text = render_result(make_result(), "table")
    ok_line = next(line for line in text.splitlines() if line.startswith("sex_worker"))
    assert "1,234" in ok_line
    assert "1,220 – 1,249" in ok_line
    assert "Bangladesh (050)" in ok_line
    assert ok_line.rstrip().endswith("ok")
    bad_line = next(line for line in text.splitlines() if line.startswith("indigenous"))
    assert "suppressed (below min cell size)" in bad_line
    assert not any(ch.isdigit() for ch in bad_line.replace("(524)", ""))
    assert "WARNING" not in text


def test_table_shares_are_percentages_with_one_decimal() -> None:
    text = render_result(make_result(measure="share"), "table")
    assert "41.2%" in text
    assert "38.0% – 44.5%" in text
    assert "share with violence_12m = yes by group × country" in text


def test_table_footer_lists_nodes_and_warns_when_partial() -> None:
    text = render_result(make_result(status="partial"), "table")
    assert "refused (budget_exhausted)" in text
    assert "Kenya (404)" in text
    assert "WARNING: partial result" in text
    assert "ke-node" in text.split("WARNING")[1]


def test_table_columns_are_aligned() -> None:
    lines = render_result(make_result(), "table").splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("group"))
    # The rule below the header has one dash run per column; rows line up with it.
    rule = lines[header + 1]
    assert set(rule) <= {"-", " "}
    assert lines[header].index("country") == lines[header + 2].index("Bangladesh")


def test_csv_has_dims_then_fixed_columns() -> None:
    rows = list(csv.reader(io.StringIO(render_result(make_result(), "csv"))))
    assert rows[0] == [
        "group",
        "country",
        "estimate",
        "ci95_low",
        "ci95_high",
        "status",
        "reason",
        "nodes",
        "rho",
        "epsilon",
        "delta",
        "mechanism",
        "noise_scale",
    ]
    assert rows[1][:2] == ["sex_worker", "050"]
    assert float(rows[1][2]) == pytest.approx(1234.4)
    assert rows[1][5:] == ["ok", "", "bd-node", "0.1", "2.6", "1e-07", "discrete_gaussian", "2.25"]
    assert rows[2] == [
        "indigenous",
        "524",
        "",
        "",
        "",
        "suppressed",
        "below_min_cell_size",
        "np-node",
        "",
        "",
        "",
        "",
        "",
    ]


def test_table_footer_states_each_nodes_guarantee() -> None:
    text = render_result(make_result(), "table")
    bd = next(line for line in text.splitlines() if "bd-node" in line and "Bangladesh" in line)
    assert "rho 0.1 (epsilon 2.6 at delta 1e-07), discrete gaussian noise sd 2.25" in bd
    np_line = next(line for line in text.splitlines() if line.strip().startswith("np-node"))
    assert "rho" not in np_line


def test_json_round_trips_to_the_model() -> None:
    result = make_result(measure="share", status="partial")
    text = render_result(result, "json")
    assert QueryResult.model_validate_json(text) == result
    assert json.loads(text)["status"] == "partial"


def test_failed_result_says_so() -> None:
    result = make_result(status="partial").model_copy(update={"status": "failed", "cells": ()})
    text = render_result(result, "table")
    assert "no node answered" in text
