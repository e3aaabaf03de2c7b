"""Rendering histogram and quantile results: reserved inner dims get readable headers."""

from datetime import UTC, datetime
from uuid import UUID

import pytest
import typer

from contracts.v1 import NodeStatus, QueryResult, QuerySpec, ResultCell
from sauti.query_cli import _spec
from sauti.render import render_result


def result(measure: str, inner: str, key: str, estimate: float) -> QueryResult:
    spec = QuerySpec(
        agreement_id="a",
        dataset="d",
        measure=measure,
        column="age",
        group_by=("sex",),
        rho=0.1,
        weighted=measure == "quantile",
    )
    cell = ResultCell(
        key=("female", key),
        status="ok",
        estimate=estimate,
        ci95_low=estimate - 2,
        ci95_high=estimate + 2,
        nodes=("n",),
    )
    return QueryResult(
        query_id=UUID("12345678-1234-5678-1234-567812345678"),
        spec=spec,
        group_by=("sex", inner),
        status="complete",
        nodes=(NodeStatus(node_id="n", outcome="ok"),),
        cells=(cell, ResultCell(key=("male", key), status="suppressed", reason="grids_differ")),
        created_at=datetime.now(UTC),
    )


def test_histogram_and_quantile_tables() -> None:
    histogram = render_result(result("histogram", "@bin", "[0, 10)", 41.6), "table")
    assert "distribution of age by sex × bin" in histogram
    assert "[0, 10)" in histogram
    assert " 42 " in histogram
    quantile = render_result(result("quantile", "@quantile", "0.5", 37.0), "table")
    assert "quantiles of age (survey-weighted) by sex × quantile" in quantile
    assert "35 – 39" in quantile
    assert "nodes used different grids" in quantile
    assert "@bin" in render_result(result("histogram", "@bin", "[0, 10)", 41.6), "csv")


def test_query_options_for_grids_and_weights() -> None:
    base = {"agreement": "a", "dataset": "d", "value": None, "by": "sex", "where": [], "rho": 0.1}
    quantile = _spec(
        measure="quantile",
        column="age",
        grids={"quantiles": "0.25,0.5", "candidates": "10,20,30", "edges": None},
        weighted=True,
        **base,  # type: ignore[arg-type]
    )
    assert quantile.quantiles == (0.25, 0.5)
    assert quantile.candidates == (10, 20, 30)
    assert quantile.weighted
    with pytest.raises(typer.BadParameter):
        _spec(measure="histogram", column="age", grids={"edges": "0,x"}, **base)  # type: ignore[arg-type]
    with pytest.raises(typer.BadParameter):
        _spec(measure="count", column=None, grids={"edges": "0,1"}, **base)  # type: ignore[arg-type]
