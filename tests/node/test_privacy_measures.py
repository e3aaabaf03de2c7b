"""DP engine, every measure: keys and inner dims, components and costs, clamping, weights,
default grids, suppression per measure, `combined` releases, and the wire additions."""

import math

import polars as pl
import pytest

from contracts import signing
from contracts.accuracy import quantile_from_bins
from contracts.v1 import Cell, Column, DatasetContract, Level, PrivacyUnit, QuerySpec
from contracts.v1.release import BIN_DIM, QUANTILE_DIM
from node.privacy import engine, mechanisms
from node.privacy.exceptions import (
    BoundsMissing,
    ColumnNotNumeric,
    ColumnNotQueryable,
    ReleaseTooLarge,
)
from tests.node.conftest import contract as node_contract

SEXES = ("female", "male", "other")


def contract(*, weighted: bool = False, k: int = 1) -> DatasetContract:
    return DatasetContract(
        name="survey",
        version=1,
        title="Measures",
        columns=(
            Column(name="sex", type="categorical", levels=tuple(Level(code=s) for s in SEXES)),
            Column(name="score", type="integer", role="measure", lower=1, upper=5),
            Column(name="income", type="number", role="measure", lower=0, upper=1000),
            Column(name="raw", type="number", role="measure"),
            Column(name="w", type="number", role="other"),
        ),
        privacy=PrivacyUnit(
            max_contributions=k,
            weight_column="w" if weighted else None,
            weight_upper=4.0 if weighted else None,
        ),
    )


def data(rows: int = 400) -> pl.LazyFrame:
    return pl.DataFrame(
        {
            "sex": pl.Series([SEXES[i % 2] for i in range(rows)], dtype=pl.Enum(SEXES)),
            "score": [1 + i % 5 for i in range(rows)],
            # One value far above the bound: clamped to 1000 before measuring.
            "income": [10.0 * (i % 50) if i else 1e9 for i in range(rows)],
            "raw": [1.0] * rows,
            "w": [1.0 + (i % 3) for i in range(rows)],
        }
    ).lazy()


def spec(**fields: object) -> QuerySpec:
    base: dict[str, object] = {"agreement_id": "a", "dataset": "survey", "rho": 10.0}
    base.update(fields)
    return QuerySpec(**base)  # type: ignore[arg-type]


def run(s: QuerySpec, *, c: DatasetContract | None = None, **kw: object) -> engine.ComputedRelease:  # type: ignore[name-defined]
    args: dict[str, object] = {"min_cell_size": 0, "max_ci_relative_width": None}
    args.update(kw)
    return engine.compute_release(
        data=data(),
        contract=c or contract(),
        spec=s,
        rho=s.rho,
        **args,  # type: ignore[arg-type]
    )


def near(cell: Cell, truth: float) -> bool:
    """One draw against the truth: 2.5 half-widths of a 95% interval (4.9 sd) fail once in a
    million; asserting the 95% interval itself would fail one run in twenty (coverage is
    tested over thousands of draws in test_privacy_statistics.py)."""
    assert cell.estimate is not None
    assert cell.ci95_low is not None
    assert cell.ci95_high is not None
    return abs(cell.estimate - truth) <= 2.5 * (cell.ci95_high - cell.ci95_low) / 2


def test_sum_and_mean_clamp_and_split_rho() -> None:
    exact = data().collect().filter(pl.col("sex") == "female")
    clamped = exact["income"].clip(0, 1000)
    for measure, truth in (("sum", clamped.sum()), ("mean", clamped.mean())):
        r = run(spec(measure=measure, column="income", group_by=("sex",)))
        female = r.cells[0]
        assert female.key == ("female",)
        assert near(female, truth)
        names = [(c.name, c.mechanism) for c in r.components]
        assert names == [("count", "discrete_gaussian"), ("sum", "gaussian")]
        assert sum(c.rho for c in r.components) == pytest.approx(10.0)
        count, total = r.components
        assert count.sensitivity == 1
        assert total.sensitivity == pytest.approx(500.0)  # k (U - L) / 2
        assert female.numerator_variance == pytest.approx(total.scale**2 + 500**2 * count.scale**2)
        assert female.covariance == pytest.approx(500 * count.scale**2)
        assert r.epsilon == pytest.approx(mechanisms.epsilon(10.0))
        assert r.delta == mechanisms.DELTA
    # No rows of "other": its noisy count is mostly 0 (sd 0.39), and never a ratio over a
    # noisy size below 1 (a noise draw of +1 or more, ~3.5% of runs, may release it).
    other = run(spec(measure="mean", column="income", group_by=("sex",))).cells[2]
    assert other.status == "suppressed" or (other.denominator or 0) >= 1


def test_weighted_measures_scale_sensitivity_by_the_weight_bound() -> None:
    c = contract(weighted=True, k=2)
    r = run(spec(measure="count", group_by=("sex",), weighted=True), c=c)
    assert r.mechanism == "gaussian"
    assert r.weighted
    assert r.components[0].sensitivity == pytest.approx(8.0)  # k W
    exact = data().collect().filter(pl.col("sex") == "female")["w"].sum()
    assert near(r.cells[0], exact)
    mean = run(spec(measure="mean", column="score", weighted=True), c=c)
    df = data().collect()
    truth = (df["score"] * df["w"]).sum() / df["w"].sum()
    assert near(mean.cells[0], truth)
    assert mean.components[1].sensitivity == pytest.approx(2 * 4 * 2.0)  # k W (U - L) / 2


def test_histogram_cells_have_bin_labels_and_default_edges() -> None:
    r = run(spec(measure="histogram", column="score", group_by=("sex",)))
    assert r.group_by == ("sex", BIN_DIM)
    assert r.grid == (1.0, 1.4, 1.8, 2.2, 2.6, 3.0, 3.4, 3.8, 4.2, 4.6, 5.0)
    labels = engine.bin_labels(r.grid)
    assert labels[0] == "[1, 1.4)"
    assert labels[-1] == "[4.6, 5]"
    assert [c.key for c in r.cells] == [(s, label) for s in SEXES for label in labels]
    # score 5 lands in the closed last bin; 1 in the first.
    female = {c.key[1]: c.estimate for c in r.cells if c.key[0] == "female"}
    assert female["[4.6, 5]"] == pytest.approx(40, abs=3)
    assert female["[1, 1.4)"] == pytest.approx(40, abs=3)
    custom = run(spec(measure="histogram", column="income", edges=(0, 100, 500)))
    # Values beyond the outer edges are clamped into the end bins: every row counts once.
    assert sum(c.estimate for c in custom.cells) == pytest.approx(400, abs=5)  # type: ignore[misc]


def test_quantile_cells_estimate_from_the_noisy_grid() -> None:
    r = run(spec(measure="quantile", column="score", quantiles=(0.25, 0.5), group_by=("sex",)))
    assert r.group_by == ("sex", QUANTILE_DIM)
    assert r.grid == (1.0, 2.0, 3.0, 4.0, 5.0)  # every integer of a short integer range
    cells = {c.key: c for c in r.cells}
    median = cells[("female", "0.5")]
    assert median.bins is not None
    assert len(median.bins) == 6
    assert median.estimate == 3.0
    assert median.ci95_low <= 3.0 <= median.ci95_high  # type: ignore[operator]
    assert cells[("female", "0.25")].estimate == 2.0
    assert r.bounds == (1, 5)
    assert r.integer
    assert (median.estimate, median.ci95_low, median.ci95_high) == quantile_from_bins(
        median.bins, r.grid, 0.5, median.variance or 0, bounds=r.bounds, integer=True
    )
    income = run(spec(measure="quantile", column="income"))
    assert len(income.grid or ()) == 101
    assert income.grid[:3] == (0.0, 10.0, 20.0)  # type: ignore[index]


def test_default_candidates_for_a_wide_integer_range_are_rounded() -> None:
    column = Column(name="age", type="integer", role="measure", lower=0, upper=1000)
    points = engine.default_candidates(column)
    assert len(points) == 101
    assert all(p == round(p) for p in points)


@pytest.mark.parametrize(
    ("measure", "column"),
    [("count", None), ("sum", "income"), ("mean", "income"), ("histogram", "score")],
)
def test_suppression_applies_to_every_measure(measure: str, column: str | None) -> None:
    s = spec(measure=measure, column=column, group_by=("sex",))
    cells = run(s, min_cell_size=50).cells
    statuses = [c.status for c in cells if c.key[0] == "other"]
    assert statuses
    assert set(statuses) == {"suppressed"}
    assert all(c.estimate is None and c.numerator is None for c in cells if c.key[0] == "other")


def test_quantile_and_share_suppression_use_the_noisy_size() -> None:
    s = spec(measure="quantile", column="score", group_by=("sex",))
    cells = run(s, min_cell_size=50).cells
    assert [c.status for c in cells] == ["ok", "ok", "suppressed"]
    assert cells[2].bins is None
    wide = run(spec(measure="mean", column="income", rho=1e-4), max_ci_relative_width=0.01)
    assert wide.cells[0].reason == "interval_too_wide"


def test_combined_releases_carry_components_without_suppression() -> None:
    s = spec(measure="mean", column="income", group_by=("sex",), rho=0.01)
    cells = run(s, min_cell_size=1000, suppress=False).cells
    assert all(c.status == "ok" for c in cells)
    assert all(c.numerator is not None and c.denominator is not None for c in cells)
    q = run(spec(measure="quantile", column="score", rho=0.01), suppress=False, min_cell_size=10**6)
    assert q.cells[0].status == "ok"
    assert q.cells[0].bins is not None


def test_cost_check_refuses_a_measurement_above_its_share() -> None:
    with pytest.raises(Exception, match="cost"):
        mechanisms.release(kind="gaussian", scale=1.0, sensitivity=2.0, rho=1.0, values=[1.0])
    sigma = mechanisms.noise_scale(rho=0.3, sensitivity=7)
    assert mechanisms.measurement("discrete_gaussian", sigma).map(7) <= 0.3
    assert sigma == pytest.approx(7 / math.sqrt(0.6), rel=1e-6)


def test_old_spec_and_release_digests_are_unchanged() -> None:
    old = spec(measure="count", group_by=("sex",))
    assert set(old.model_dump(mode="json")) == {
        "agreement_id",
        "dataset",
        "measure",
        "column",
        "value",
        "group_by",
        "filters",
        "rho",
    }
    assert signing.digest(old) == signing.digest(spec(measure="count", group_by=("sex",)))
    q = spec(measure="quantile", column="score", quantiles=(0.5,), weighted=True)
    assert QuerySpec.model_validate_json(q.model_dump_json()) == q


@pytest.mark.parametrize(
    "fields",
    [
        {"measure": "count", "edges": (0, 1)},
        {"measure": "histogram", "column": "score", "edges": (2, 1)},
        {"measure": "quantile", "column": "score", "quantiles": (1.0,)},
        {"measure": "quantile", "column": "score", "candidates": (1, 1)},
        {"measure": "mean"},
        {"measure": "sum", "column": "score", "value": "x"},
        {"measure": "histogram", "column": "score", "quantiles": (0.5,)},
    ],
)
def test_bad_combinations_are_refused_by_the_model(fields: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        spec(**fields)


def test_numeric_measures_need_bounds_and_a_numeric_column() -> None:
    with pytest.raises(BoundsMissing):
        run(spec(measure="mean", column="raw"))
    with pytest.raises(ColumnNotNumeric):
        run(spec(measure="quantile", column="sex"))


def test_null_values_count_nowhere_and_the_weight_is_never_measured() -> None:
    frame = data().with_columns(
        pl.when(pl.int_range(pl.len()) % 4 == 0)
        .then(None)
        .otherwise(pl.col("score"))
        .alias("score")
    )
    c = contract(weighted=True)
    for measure in ("sum", "mean", "histogram", "quantile"):
        s = spec(measure=measure, column="score", rho=10.0)
        r = engine.compute_release(
            data=frame, contract=c, spec=s, rho=s.rho, min_cell_size=0, max_ci_relative_width=None
        )
        if measure in ("sum", "mean"):
            assert r.cells[0].denominator == pytest.approx(300, abs=5)
        elif measure == "quantile":
            assert sum(r.cells[0].bins or ()) == pytest.approx(300, abs=10)
        else:
            assert sum(cell.estimate or 0 for cell in r.cells) == pytest.approx(300, abs=10)
    with pytest.raises(ColumnNotQueryable):
        run(spec(measure="sum", column="w"), c=c)


def test_a_release_too_large_to_sign_is_refused_before_any_noise() -> None:
    edges = tuple(float(e) for e in range(0, 1001, 5))  # 200 bins x 3 sexes: fine
    assert run(spec(measure="histogram", column="income", edges=edges, group_by=("sex",)))
    three_dims = node_contract()  # 18 cells x 200 bins would not fit a signed release
    s = spec(
        measure="histogram",
        column="age",
        edges=tuple(float(e) for e in range(0, 201)),
        group_by=("sex", "district", "group"),
    )
    with pytest.raises(ReleaseTooLarge):
        engine.check_spec(contract=three_dims, spec=s)


def test_zero_moments_survive_the_wire() -> None:
    """A covariance of 0 (bounds centred on 0) is sent, not dropped as 'unset'."""
    cell = Cell(key=(), status="ok", covariance=0.0, variance=0.0, numerator=0)
    again = Cell.model_validate_json(cell.model_dump_json())
    assert (again.covariance, again.variance, again.numerator) == (0.0, 0.0, 0.0)


def test_clamp_skipped_only_when_the_stored_file_is_within_bounds(tmp_path) -> None:
    """With `source`, the observed range decides whether the per-row clamp is needed: the
    exact components are the same either way, and an out-of-bounds file is still clamped."""
    inside = tmp_path / "inside.parquet"
    data().collect().with_columns(pl.col("income").clip(0, 1000)).write_parquet(inside)
    outside = tmp_path / "outside.parquet"
    data().collect().write_parquet(outside)  # one income of 1e9
    s = spec(measure="sum", column="income")
    for path in (inside, outside):
        with_source = engine.measure_exact(
            data=pl.scan_parquet(path), contract=contract(), spec=s, rho=s.rho, source=path
        )
        without = engine.measure_exact(
            data=pl.scan_parquet(path), contract=contract(), spec=s, rho=s.rho
        )
        assert with_source.values == without.values
        # centred sum + 500 x count = the clamped sum
        clamped = data().collect()["income"].clip(0, 1000).sum()
        assert with_source.values["sum"][0] + 500 * with_source.values["count"][0] == clamped


@pytest.mark.parametrize(
    ("measure", "column"), [("count", None), ("histogram", "score"), ("sum", "income")]
)
def test_intervals_of_counts_and_sums_of_non_negative_values_stay_at_or_above_zero(
    measure: str, column: str | None
) -> None:
    """Noise of sd ~100 against counts of ~40: the lower ends would go far below 0."""
    s = spec(measure=measure, column=column, group_by=("sex",), rho=0.0001)
    for _ in range(20):
        cells = [c for c in run(s).cells if c.status == "ok"]
        assert all(c.ci95_low >= 0 for c in cells)  # type: ignore[operator]
        assert all(c.estimate >= 0 for c in cells if measure == "sum")  # type: ignore[operator]
