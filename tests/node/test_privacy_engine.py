"""DP engine: shape of releases, public keys, filters, suppression, typed refusals."""

import math

import polars as pl
import pytest

from contracts.v1 import Filter, QuerySpec
from node.privacy import engine
from node.privacy.exceptions import (
    ColumnNotNumeric,
    ColumnNotQueryable,
    DimNotCategorical,
    MeasureNotSupported,
    NoWeightColumn,
    UnknownColumn,
    UnknownLevel,
)
from tests.node.conftest import DISTRICTS, GROUPS, SEXES, contract, frame

CONTRACT = contract()


def data() -> pl.LazyFrame:
    df = frame(200).drop("respondent", "phone", "comment")
    return df.with_columns(
        [
            pl.col(c).cast(pl.Enum(list(CONTRACT.column(c).level_codes)))  # type: ignore[union-attr]
            for c in ("sex", "district", "group", "disability")
        ]
    ).lazy()


def spec(**fields) -> QuerySpec:
    base = {"agreement_id": "a", "dataset": "survey", "measure": "count", "rho": 0.5}
    base.update(fields)
    return QuerySpec(**base)


def release(s: QuerySpec, **kw):
    args = {"min_cell_size": 0, "max_ci_relative_width": None}
    args.update(kw)
    return engine.compute_release(data=data(), contract=CONTRACT, spec=s, rho=s.rho, **args)


def test_every_contract_level_appears_even_unobserved() -> None:
    # "other" sex is a contract level that no row has.
    r = release(spec(group_by=("sex", "district", "group")))
    keys = [c.key for c in r.cells]
    assert keys == [(s, d, g) for s in SEXES for d in DISTRICTS for g in GROUPS]
    assert r.mechanism == "discrete_gaussian"
    assert r.noise_scale == pytest.approx(1 / math.sqrt(2 * 0.5), rel=1e-6)


def test_no_dims_gives_one_cell() -> None:
    r = release(spec())
    assert [c.key for c in r.cells] == [()]
    assert r.cells[0].estimate == pytest.approx(200, abs=10)


def test_filters_restrict_rows() -> None:
    exact = frame(200).filter(pl.col("district") == "north").height
    r = release(spec(filters=(Filter(column="district", levels=("north",)),), rho=5.0))
    assert r.cells[0].estimate == pytest.approx(exact, abs=5)


def test_share_cells_have_components() -> None:
    # "other" has no rows: its noisy denominator (two draws of sd 0.32) reaches 1 about one
    # release in eighty, so a minimum cell size of 5 (about 11 sd) withholds it every time.
    r = release(
        spec(measure="share", column="disability", value="yes", group_by=("sex",), rho=5),
        min_cell_size=5,
    )
    female, _male, other = r.cells
    assert female.status == "ok"
    assert female.numerator is not None
    assert female.denominator is not None
    assert 0 <= female.estimate <= 1
    exact = frame(200).filter(pl.col("sex") == "female")
    true_share = exact.filter(pl.col("disability") == "yes").height / exact.height
    assert female.estimate == pytest.approx(true_share, abs=0.1)
    assert other.status == "suppressed"
    assert other.estimate is None
    assert other.numerator is None


def test_suppression_below_min_cell_size_and_wide_intervals() -> None:
    r = release(spec(group_by=("sex",)), min_cell_size=50)
    assert r.cells[2].status == "suppressed"
    assert r.cells[2].reason == "below_min_cell_size"
    assert r.cells[2].estimate is None
    assert r.cells[2].ci95_low is None
    assert r.cells[0].status == "ok"
    tight = release(spec(group_by=("sex",), rho=0.001), max_ci_relative_width=0.01)
    assert {c.reason for c in tight.cells} <= {"interval_too_wide", "below_min_cell_size"}


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"group_by": ("nope",)}, UnknownColumn),
        ({"measure": "share", "column": "nope", "value": "x"}, UnknownColumn),
        ({"group_by": ("age",)}, DimNotCategorical),
        ({"group_by": ("comment",)}, ColumnNotQueryable),
        ({"group_by": ("phone",)}, ColumnNotQueryable),
        ({"group_by": ("respondent",)}, ColumnNotQueryable),
        ({"filters": (Filter(column="sex", levels=("secret-level",)),)}, UnknownLevel),
        ({"measure": "share", "column": "sex", "value": "secret-level"}, UnknownLevel),
        ({"measure": "share", "column": "age", "value": "3"}, MeasureNotSupported),
        ({"measure": "mean", "column": "sex"}, ColumnNotNumeric),
        ({"measure": "histogram", "column": "disability"}, ColumnNotNumeric),
        ({"measure": "sum", "column": "comment"}, ColumnNotQueryable),
        ({"measure": "count", "weighted": True}, NoWeightColumn),
    ],
)
def test_bad_specs_raise_typed_errors(fields, error) -> None:
    with pytest.raises(error) as info:
        release(spec(**fields))
    assert "secret-level" not in str(info.value)
    assert "nope" not in str(info.value)


def test_combined_suppression_releases_every_noisy_cell_for_the_hub() -> None:
    """Under `suppression: combined` nothing is withheld at the node, negatives included."""
    s = spec(group_by=("sex", "district", "group"), rho=0.01)
    withheld = release(s, min_cell_size=1000)
    assert all(c.status == "suppressed" for c in withheld.cells)
    kept = release(s, min_cell_size=1000, suppress=False)
    assert all(c.status == "ok" and c.estimate is not None for c in kept.cells)
    # The "other" sex level has no rows: with sigma ~7 some of its noisy counts fall below
    # zero over a few releases, and they must be released as they are, not clipped.
    values = [
        c.estimate
        for _ in range(5)
        for c in release(s, suppress=False).cells
        if c.key[0] == "other"
    ]
    assert min(values) < 0


def test_combined_share_keeps_components_even_without_a_ratio() -> None:
    s = spec(measure="share", column="disability", value="yes", group_by=("sex",), rho=0.01)
    cells = release(s, suppress=False).cells
    assert all(c.numerator is not None and c.denominator is not None for c in cells)
    assert all(c.status == "ok" for c in cells)
    assert all((c.estimate is None) == (c.denominator < 1) for c in cells)
