"""Every measure through the node API: answered with its components, or refused with a
stable 4xx code and nothing charged (the issue's bad-input list)."""

from decimal import Decimal

import polars as pl
import pytest

from contracts import signing
from contracts.v1 import Column, Release
from contracts.v1.release import BIN_DIM, QUANTILE_DIM
from node.ledger.service import budget_report
from tests.node.conftest import Node, contract, frame, make_node

MEASURES = ("count", "share", "sum", "mean", "quantile", "histogram")


@pytest.fixture
def node(tmp_path, db_url) -> Node:
    base = contract()
    with_unbounded = base.model_copy(
        update={
            "columns": (
                *base.columns,
                Column(name="score", type="number", role="measure"),
                Column(name="hidden", type="integer", role="other", lower=0, upper=9),
            )
        }
    )
    data = frame(200).with_columns(pl.lit(3.0).alias("score"), pl.lit(1).alias("hidden"))
    return make_node(
        tmp_path / "n",
        db_url,
        data=data,
        dataset_contract=with_unbounded,
        measures=MEASURES,
        columns=("disability", "sex", "age", "score", "hidden"),
        rho_per_query_max=1.0,
    )


def release_of(node: Node, response) -> Release:
    assert response.status_code == 200, response.text
    key = signing.load_public_key(node.identity.public_jwk)
    return signing.verify_model(response.json()["jws"], key, Release)


def spent(node: Node) -> Decimal:
    return budget_report(home=node.home, settings=node.settings)[0].rho_spent


@pytest.mark.parametrize(
    ("fields", "dims"),
    [
        ({"measure": "sum", "column": "age"}, ("sex",)),
        ({"measure": "mean", "column": "age"}, ("sex",)),
        (
            {"measure": "quantile", "column": "age", "quantiles": (0.25, 0.75)},
            ("sex", QUANTILE_DIM),
        ),
        ({"measure": "histogram", "column": "age", "edges": (0, 30, 60, 120)}, ("sex", BIN_DIM)),
    ],
)
def test_numeric_measures_are_answered_signed_and_charged(node: Node, fields, dims) -> None:
    release = release_of(node, node.post(node.request(node.spec(group_by=("sex",), **fields))))
    assert release.group_by == dims
    assert release.components
    assert sum(c.rho for c in release.components) == pytest.approx(0.1)
    assert release.epsilon is not None
    assert release.delta is not None
    assert spent(node) == Decimal("0.1")


@pytest.mark.parametrize(
    ("fields", "status", "code"),
    [
        ({"measure": "mean", "column": "sex"}, 422, "column_not_numeric"),
        ({"measure": "sum", "column": "disability"}, 422, "column_not_numeric"),
        ({"measure": "mean", "column": "score"}, 422, "bounds_missing"),
        ({"measure": "quantile", "column": "score"}, 422, "bounds_missing"),
        ({"measure": "mean", "column": "hidden"}, 422, "column_not_queryable"),
        ({"measure": "count", "group_by": ("age",)}, 422, "dim_not_categorical"),
        ({"measure": "count", "group_by": ("respondent",)}, 422, "column_not_queryable"),
        (
            {"measure": "count", "group_by": ("sex", "district", "group", "disability")},
            403,
            "too_many_dims",
        ),
        ({"measure": "count", "weighted": True}, 422, "no_weight_column"),
        ({"measure": "mean", "column": "age", "rho": 2.0}, 403, "cost_over_cap"),
    ],
)
def test_bad_input_is_refused_and_charges_nothing(node: Node, fields, status, code) -> None:
    response = node.post(node.request(node.spec(**fields)))
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    assert spent(node) == 0


def test_measure_not_in_the_agreement_is_refused(tmp_path, db_url) -> None:
    n = make_node(tmp_path / "n", db_url)  # the agreement allows count and share only
    response = n.post(n.request(n.spec(measure="mean", column="age")))
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "measure_not_allowed"
    assert spent(n) == 0
