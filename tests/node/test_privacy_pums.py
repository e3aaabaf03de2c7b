"""Every measure on the real public PUMS extract (../shared/data/pums, 1,000 rows, one row per
person): each released interval is compared with the exact answer.

Bounds and types come from PUMS.yaml (age [0, 100], income [0, 500000]; sex, educ, race and
married are categorical with the levels found in the public codebook). Each 95% interval
misses its exact value with probability about 5% (quantile intervals: less, they are
conservative), so a fixed number of misses is allowed per measure: the largest count that
Binomial(cells, 0.05) exceeds with probability below 1e-4 (a Bonferroni-style allowance,
so the test as a whole raises a false alarm less than once in 1,000 runs).
"""

from pathlib import Path

import numpy as np
import polars as pl
import pytest
import yaml
from scipy import stats

from contracts.v1 import Column, DatasetContract, Level, PrivacyUnit, QuerySpec
from node.privacy import engine

PUMS = Path(__file__).resolve().parents[3] / "shared" / "data" / "pums"
LEVELS = {
    "sex": ("0", "1"),
    "educ": tuple(str(i) for i in range(1, 17)),
    "race": tuple(str(i) for i in range(1, 7)),
    "married": ("0", "1"),
}
RHO = 0.5

pytestmark = pytest.mark.skipif(not (PUMS / "PUMS.csv").exists(), reason="no PUMS extract")


def pums_contract() -> DatasetContract:
    meta = yaml.safe_load((PUMS / "PUMS.yaml").read_text())["PUMS"]["PUMS"]["PUMS"]
    return DatasetContract(
        name="pums",
        version=1,
        title="PUMS extract",
        columns=(
            *(
                Column(name=name, type="categorical", levels=tuple(Level(code=c) for c in codes))
                for name, codes in LEVELS.items()
            ),
            *(
                Column(
                    name=name,
                    type="integer",
                    role="measure",
                    lower=meta[name]["lower"],
                    upper=meta[name]["upper"],
                )
                for name in ("age", "income")
            ),
        ),
        privacy=PrivacyUnit(max_contributions=1),
    )


def pums() -> pl.DataFrame:
    raw = pl.read_csv(PUMS / "PUMS.csv", infer_schema=False)
    return raw.select(
        *(pl.col(name).cast(pl.Enum(codes)) for name, codes in LEVELS.items()),
        pl.col("age").cast(pl.Int64),
        pl.col("income").cast(pl.Float64).cast(pl.Int64),
    )


def release(**fields: object) -> engine.ComputedRelease:  # type: ignore[name-defined]
    spec = QuerySpec(agreement_id="a", dataset="pums", rho=RHO, **fields)  # type: ignore[arg-type]
    return engine.compute_release(
        data=pums().lazy(),
        contract=pums_contract(),
        spec=spec,
        rho=RHO,
        min_cell_size=0,
        max_ci_relative_width=None,
        suppress=False,
    )


def exact(by: list[str], expr: pl.Expr) -> dict[tuple[str, ...], float]:
    df = pums().group_by(by).agg(expr.alias("x"))
    return {tuple(str(v) for v in row[:-1]): float(row[-1]) for row in df.iter_rows()}


def allowed_misses(cells: int) -> int:
    return int(stats.binom.isf(1e-4, cells, 0.05))


def check(cells: list[tuple[float | None, float | None, float]]) -> None:
    misses = sum(
        not (low is not None and high is not None and low <= x <= high) for low, high, x in cells
    )
    assert misses <= allowed_misses(len(cells))


@pytest.mark.parametrize(
    ("fields", "expr"),
    [
        ({"measure": "count"}, pl.len()),
        (
            {"measure": "share", "column": "married", "value": "1"},
            (pl.col("married") == "1").mean(),
        ),
        ({"measure": "sum", "column": "income"}, pl.col("income").sum()),
        ({"measure": "mean", "column": "income"}, pl.col("income").mean()),
        ({"measure": "mean", "column": "age"}, pl.col("age").mean()),
    ],
)
def test_linear_and_ratio_measures(fields: dict[str, object], expr: pl.Expr) -> None:
    dims = ["sex", "race"]
    truth = exact(dims, expr)
    r = release(group_by=tuple(dims), **fields)
    # Levels with no person stay in the output (structural zeros); ratios over them have
    # no estimate, and are not compared.
    compared = [(c.ci95_low, c.ci95_high, truth[c.key]) for c in r.cells if c.key in truth]
    assert len(r.cells) == 12
    check(compared)


def test_histogram() -> None:
    # np.histogram's bins are [a, b) but the last [a, b]: the engine's bins (age <= 100).
    r = release(measure="histogram", column="age", group_by=("sex",))
    edges = r.grid or ()
    labels = engine.bin_labels(edges)
    ages = pums()
    truth = {}
    for sex in LEVELS["sex"]:
        values = ages.filter(pl.col("sex") == sex)["age"].to_numpy()
        counts = np.histogram(values, bins=np.asarray(edges))[0]
        for label, count in zip(labels, counts, strict=True):
            truth[(sex, label)] = float(count)
    assert ages.height == 1000
    check([(c.ci95_low, c.ci95_high, truth[c.key]) for c in r.cells])


def test_quantiles() -> None:
    r = release(
        measure="quantile", column="age", quantiles=(0.1, 0.5, 0.9), group_by=("sex", "married")
    )
    grid = np.asarray(r.grid or ())
    df = pums()
    compared = []
    for c in r.cells:
        sex, married, q = c.key
        values = df.filter((pl.col("sex") == sex) & (pl.col("married") == married))[
            "age"
        ].to_numpy()
        cdf = np.array([(values <= g).sum() for g in grid])
        target = float(grid[np.argmax(cdf >= float(q) * len(values))])
        compared.append((c.ci95_low, c.ci95_high, target))
        assert c.estimate is not None
        assert c.ci95_low <= c.estimate <= c.ci95_high  # type: ignore[operator]
    check(compared)
