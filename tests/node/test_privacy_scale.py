"""Intervals and noise at any scale: the closed-form discrete quantile, its coverage, and the
bounds that refuse a scale no release can carry, all in constant memory.

* Above EXACT_SCALE_LIMIT the 95% half-width of a discrete count comes from the closed form
  (node/privacy/mechanisms.py proves it covers and is the exact quantile or one more). Here
  it is compared with the exact quantile summed from the pmf over 300 scales around and
  above the limit, and its coverage is sampled: n = 400,000 draws of OpenDP's discrete
  Gaussian, accepted within 5.3 binomial standard deviations of the exact coverage (a
  false alarm has probability about 1e-7).
* A tiny rho (1e-13, 1e-300) no longer builds a table as long as 12 sigma: the peak RSS of
  this process (VmHWM after a reset, /proc) grows by less than 50 MB.
"""

import math
import random

import numpy as np
import polars as pl
import pytest

from contracts.v1 import Column, DatasetContract, Level, PrivacyUnit, QuerySpec
from node.privacy import engine, mechanisms
from node.privacy.exceptions import NoiseOutOfRange
from tests.node.memory_support import MB, peak_rss_growth

DRAWS = 400_000
SDS = 5.3


def exact_half_width(scale: float, coverage: float = 0.95) -> float:
    """The reference: the smallest h with P(|X| <= h) >= coverage, summed from the pmf."""
    ks = np.arange(0, math.ceil(12 * scale) + 2, dtype=np.float64)
    weights = np.exp(-(ks * ks) / (2 * scale * scale))
    weights[1:] *= 2
    return float(np.searchsorted(np.cumsum(weights) / weights.sum(), coverage))


def exact_coverage(scale: float, half: float) -> float:
    ks = np.arange(0, math.ceil(14 * scale) + 2, dtype=np.float64)
    weights = np.exp(-(ks * ks) / (2 * scale * scale))
    weights[1:] *= 2
    return float(weights[: int(half) + 1].sum() / weights.sum())


def test_the_closed_form_is_the_exact_quantile_or_one_more() -> None:
    rnd = random.Random(20)
    limit = mechanisms.EXACT_SCALE_LIMIT
    scales = [10.0, 33.3, 999.9, limit, limit * (1 + 1e-9), 1234.5, 5000.0, 20_000.7]
    scales += [rnd.uniform(10, 30_000) for _ in range(292)]
    for scale in scales:
        exact = exact_half_width(scale)
        closed = mechanisms._closed_form_half_width(scale, 0.95)
        assert closed in (exact, exact + 1), scale
        assert exact_coverage(scale, closed) >= 0.95
    # The switch at the limit moves the half-width by at most one step.
    below = mechanisms.discrete_half_width(limit)
    above = mechanisms.discrete_half_width(limit * (1 + 1e-9))
    assert 0 <= above - below <= 1


def test_sampled_coverage_above_the_limit() -> None:
    scale = 2500.0
    half = mechanisms.discrete_half_width(scale)
    p = exact_coverage(scale, half)
    assert 0.95 <= p <= 0.9502
    noise = np.asarray(
        mechanisms.release(
            kind="discrete_gaussian",
            scale=scale,
            sensitivity=1,
            rho=1 / (2 * (scale / mechanisms.SCALE_NUDGE) ** 2) * (1 + 1e-6),
            values=[0.0] * DRAWS,
        )
    )
    observed = float((np.abs(noise) <= half).mean())
    assert abs(observed - p) <= SDS * math.sqrt(p * (1 - p) / DRAWS)


def test_huge_scales_take_constant_memory() -> None:
    with peak_rss_growth() as growth:
        half = mechanisms.discrete_half_width(7.07e149)
        assert math.isfinite(half)
        assert half == pytest.approx(1.959964 * 7.07e149, rel=1e-6)
        mechanisms.discrete_half_width(2.2e6)
    assert growth.bytes < 50 * MB


def contract() -> DatasetContract:
    return DatasetContract(
        name="scale",
        version=1,
        title="Scale",
        columns=(Column(name="g", type="categorical", levels=(Level(code="a"), Level(code="b"))),),
        privacy=PrivacyUnit(max_contributions=1),
    )


def spec(rho: float) -> QuerySpec:
    return QuerySpec(agreement_id="a", dataset="scale", measure="count", group_by=("g",), rho=rho)


def test_a_tiny_rho_releases_in_constant_memory_or_is_refused_before_any_noise() -> None:
    data = pl.DataFrame({"g": pl.Series(["a", "b"] * 50, dtype=pl.Enum(["a", "b"]))}).lazy()
    with peak_rss_growth() as growth:
        # rho 1e-13: sigma ~ 2.2e6, above the exact limit; released with the closed form.
        engine.check_cost(contract=contract(), spec=spec(1e-13), rho=1e-13)
        release = engine.compute_release(
            data=data,
            contract=contract(),
            spec=spec(1e-13),
            rho=1e-13,
            min_cell_size=0,
            max_ci_relative_width=None,
            suppress=False,
        )
        cell = release.cells[0]
        assert cell.ci95_high is not None
        assert cell.estimate is not None
        # Counts are cut at 0 below; the upper half-width is the closed form's.
        assert cell.ci95_high - cell.estimate == pytest.approx(1.96 * release.noise_scale, rel=1e-3)
        # rho 1e-300: sigma ~ 7e149 is refused by the checks that run before any charge.
        with pytest.raises(NoiseOutOfRange):
            engine.check_cost(contract=contract(), spec=spec(1e-300), rho=1e-300)
        with pytest.raises(NoiseOutOfRange):
            engine.compute_release(
                data=data,
                contract=contract(),
                spec=spec(1e-300),
                rho=1e-300,
                min_cell_size=0,
                max_ci_relative_width=None,
            )
    assert growth.bytes < 50 * MB


@pytest.mark.parametrize(
    ("kind", "scale"),
    [
        ("discrete_gaussian", 2e12),
        ("discrete_gaussian", math.inf),
        ("gaussian", 1e101),
        ("gaussian", math.nan),
    ],
)
def test_scales_out_of_range_are_refused(kind: mechanisms.Kind, scale: float) -> None:
    with pytest.raises(NoiseOutOfRange):
        mechanisms.check(kind=kind, scale=scale, sensitivity=1, rho=1.0)
