"""Statistical tests of the DP engine: noise scale and 95% interval coverage.

Tolerances come from bounds, not taste: the sample variance of n draws has relative standard
error sqrt(2/(n-1)) (Gaussian-like noise); we accept 5 standard errors. Coverage counts are
Binomial(n, p) where p is the exact coverage of the interval under the discrete Gaussian
(computed from its pmf); we accept p +- 4.5 binomial standard deviations.
"""

import math

import polars as pl
import pytest

from contracts.v1 import QuerySpec
from node.privacy import engine
from tests.node.conftest import contract

CONTRACT = contract()
ROWS = 240
RELEASES = 600
Z = 4.5


def small_frame() -> pl.LazyFrame:
    levels = ("yes", "no")
    sexes = ("female", "male", "other")
    return pl.DataFrame(
        {
            "sex": pl.Series([sexes[i % 2] for i in range(ROWS)], dtype=pl.Enum(sexes)),
            "disability": pl.Series(
                [levels[0 if (i // 2) % 3 == 0 else 1] for i in range(ROWS)], dtype=pl.Enum(levels)
            ),
        }
    ).lazy()


def exact_counts() -> dict[str, int]:
    df = small_frame().collect()
    return {s: df.filter(pl.col("sex") == s).height for s in ("female", "male", "other")}


def discrete_gaussian_mass_within(sigma: float, half: float) -> float:
    span = range(-int(12 * sigma) - 1, int(12 * sigma) + 2)
    weights = {k: math.exp(-(k * k) / (2 * sigma * sigma)) for k in span}
    total = sum(weights.values())
    return sum(w for k, w in weights.items() if abs(k) <= half) / total


def run(spec: QuerySpec) -> list[engine.ComputedRelease]:  # type: ignore[name-defined]
    return [
        engine.compute_release(
            data=small_frame(),
            contract=CONTRACT,
            spec=spec,
            rho=spec.rho,
            min_cell_size=0,
            max_ci_relative_width=None,
        )
        for _ in range(RELEASES)
    ]


def count_spec(rho: float) -> QuerySpec:
    return QuerySpec(
        agreement_id="a", dataset="survey", measure="count", group_by=("sex",), rho=rho
    )


def test_noise_std_matches_sigma() -> None:
    rho = 0.02
    releases = run(count_spec(rho))
    sigma = releases[0].noise_scale
    exact = exact_counts()
    # "other" has no rows: its cells are mostly suppressed, so only observed cells count.
    errors = [
        c.estimate - exact[c.key[0]]  # type: ignore[operator]
        for r in releases
        for c in r.cells
        if exact[c.key[0]] > 0
    ]
    n = len(errors)
    mean = sum(errors) / n
    var = sum((e - mean) ** 2 for e in errors) / (n - 1)
    # Relative SE of the sample variance: sqrt(2/(n-1)); 5 SE either side.
    tolerance = 5 * math.sqrt(2 / (n - 1))
    assert abs(var / sigma**2 - 1) < tolerance
    assert abs(mean) < 5 * sigma / math.sqrt(n)


@pytest.mark.parametrize("rho", [0.005, 0.5])
def test_count_interval_coverage(rho: float) -> None:
    releases = run(count_spec(rho))
    sigma = releases[0].noise_scale
    half = engine.count_accuracy(sigma)
    p = discrete_gaussian_mass_within(sigma, half)
    assert p >= 0.95
    exact = exact_counts()
    cells = [c for r in releases for c in r.cells if exact[c.key[0]] > 0]
    covered = sum(c.ci95_low <= exact[c.key[0]] <= c.ci95_high for c in cells)  # type: ignore[operator]
    n = len(cells)
    assert abs(covered / n - p) <= Z * math.sqrt(p * (1 - p) / n)


def test_share_interval_coverage() -> None:
    # Large enough noise that the normal approximation is what is tested, small enough that
    # the denominator stays well away from zero.
    spec = QuerySpec(
        agreement_id="a",
        dataset="survey",
        measure="share",
        column="disability",
        value="yes",
        group_by=("sex",),
        rho=0.02,
    )
    df = small_frame().collect()
    truth = {}
    for s in ("female", "male"):
        part = df.filter(pl.col("sex") == s)
        truth[s] = part.filter(pl.col("disability") == "yes").height / part.height
    releases = run(spec)
    cells = [c for r in releases for c in r.cells if c.key[0] in truth]
    assert all(c.status == "ok" for c in cells)
    covered = sum(c.ci95_low <= truth[c.key[0]] <= c.ci95_high for c in cells)  # type: ignore[operator]
    n, p = len(cells), 0.95
    assert abs(covered / n - p) <= Z * math.sqrt(p * (1 - p) / n)
    for c in cells:
        ratio = c.numerator / c.denominator  # type: ignore[operator]
        assert c.estimate == pytest.approx(min(1.0, max(0.0, ratio)))
