"""Hub planning refuses every new measure the agreement does not allow, before any node."""

from typing import Any

import pytest
from hub_support import ANALYST_ORG, make_terms

from contracts.v1 import QuerySpec
from hub.exceptions import HubError
from hub.queries.planning import check_spec, node_spec

NODES = [("ke-a", "404"), ("np-a", "524")]
ALL = ("count", "share", "sum", "mean", "quantile", "histogram")


def spec(**changes: Any) -> QuerySpec:
    fields: dict[str, Any] = {
        "agreement_id": "lnob-2026",
        "dataset": "lnob_household",
        "measure": "mean",
        "column": "income",
        "group_by": ("country", "sex"),
        "rho": 0.2,
    }
    fields.update(changes)
    return QuerySpec(**fields)


@pytest.mark.parametrize(
    ("changes", "terms_changes", "code"),
    [
        ({}, {"columns": ("income",)}, "measure_not_allowed"),
        (
            {"measure": "quantile"},
            {"measures": ALL[:4], "columns": ("income",)},
            "measure_not_allowed",
        ),
        ({}, {"measures": ALL}, "column_not_allowed"),
        (
            {"group_by": ("sex", "age_band", "district")},
            {"measures": ALL, "columns": ("income",)},
            "too_many_dims",
        ),
        ({"group_by": ("religion",)}, {"measures": ALL, "columns": ("income",)}, "dim_not_allowed"),
        ({"rho": 0.9}, {"measures": ALL, "columns": ("income",)}, "cost_over_cap"),
        (
            {"measure": "quantile", "candidates": (1000, 1001, 1002)},
            {"measures": ALL, "columns": ("income",), "grids": "public"},
            "grid_not_allowed",
        ),
    ],
)
def test_refusals(changes: dict[str, Any], terms_changes: dict[str, Any], code: str) -> None:
    with pytest.raises(HubError) as info:
        check_spec(
            spec=spec(**changes),
            terms=make_terms(NODES, **terms_changes),
            organisation=ANALYST_ORG,
        )
    assert info.value.code == code


def test_allowed_numeric_measures_keep_their_options_for_the_nodes() -> None:
    terms = make_terms(NODES, measures=ALL, columns=("income",))
    s = spec(measure="histogram", edges=(0, 10, 100), weighted=True)
    check_spec(spec=s, terms=terms, organisation=ANALYST_ORG)
    sent = node_spec(s)
    assert sent.group_by == ("sex",)
    assert sent.edges == (0, 10, 100)
    assert sent.weighted
