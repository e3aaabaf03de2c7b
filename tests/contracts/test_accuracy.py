"""The interval rules node and hub share (contracts/accuracy.py), checked by simulation.

Each coverage check draws the documented noise with a fixed numpy seed (the claims are about
Gaussian noise of a stated variance, so a seeded generator tests them exactly and the
figures never move), over 20,000 trials or more, and accepts a miss rate up to the nominal
one plus 4 binomial standard deviations (about 0.6 points at 20,000 trials). The same rules
through the engine, with OpenDP's own noise, are in tests/node/test_privacy_statistics.py.
"""

import math

import numpy as np
import pytest

from contracts import accuracy

TRIALS = 20_000


def within(misses: int, trials: int, rate: float) -> bool:
    """At most `rate` plus 4 binomial sd of misses."""
    return misses / trials <= rate + 4 * math.sqrt(rate * (1 - rate) / trials)


def test_share_interval_covers_the_true_share_about_95_percent() -> None:
    rng = np.random.default_rng(7)
    sigma, match, other = 4.0, 60, 140
    true_p = match / (match + other)
    noisy_match = match + rng.normal(0, sigma, TRIALS)
    noisy_other = other + rng.normal(0, sigma, TRIALS)
    covered = 0
    for m, o in zip(noisy_match, noisy_other, strict=True):
        low, high = accuracy.share_interval(m, m + o, sigma**2)
        covered += low <= true_p <= high
    assert 0.94 <= covered / TRIALS <= 0.96


@pytest.mark.parametrize(
    ("count", "sigma_count", "sigma_sum", "mean", "center"),
    [
        (20, 12.2, 433.0, 24.0, 50.0),  # 20 people at rho 0.01, values in [0, 100]
        (20, 5.5, 194.0, 24.0, 50.0),  # at rho 0.05
        (60, 12.2, 433.0, 80.0, 50.0),  # mean above the centre
        (500, 12.2, 433.0, 24.0, 50.0),  # a normal cell: Fieller ~ the delta method
    ],
)
def test_ratio_intervals_cover_on_each_side_even_for_small_noisy_denominators(
    count: int, sigma_count: float, sigma_sum: float, mean: float, center: float
) -> None:
    """A mean released as (N, D): N = centred sum + m D, D = count, each with Gaussian noise.
    The delta method missed 5-7% on one side at 20 people; Fieller's interval misses at
    most 2.5% on each side, at any denominator (the whole range when D is not significant)."""
    rng = np.random.default_rng(count)
    centred = count * (mean - center) + rng.normal(0, sigma_sum, TRIALS)
    d = count + rng.normal(0, sigma_count, TRIALS)
    n = centred + center * d
    below = above = 0
    for numerator, denominator in zip(n, d, strict=True):
        low, high = accuracy.ratio_interval(
            numerator,
            denominator,
            numerator_variance=sigma_sum**2 + center**2 * sigma_count**2,
            denominator_variance=sigma_count**2,
            covariance=center * sigma_count**2,
            low=0.0,
            high=100.0,
        )
        assert low <= high
        if denominator > 0:
            assert low <= min(100.0, max(0.0, numerator / denominator)) <= high
        below += mean < low
        above += mean > high
    assert within(below, TRIALS, 0.025)
    assert within(above, TRIALS, 0.025)


def test_a_ratio_over_an_insignificant_denominator_is_the_whole_range() -> None:
    assert accuracy.ratio_interval(
        5.0, 3.0, numerator_variance=100, denominator_variance=100, covariance=0, low=0, high=1
    ) == (0, 1)


def test_counts_and_sums_keep_to_what_they_can_be() -> None:
    assert accuracy.count_interval(2.0, 25.0)[0] == 0.0
    estimate, low, high = accuracy.sum_interval(-10.0, 100.0, bounds=(0, 10))
    assert (estimate, low) == (0.0, 0.0)
    assert high == pytest.approx(-10 + accuracy.Z95 * 10)
    estimate, low, high = accuracy.sum_interval(30.0, 100.0, bounds=(-10, -1))
    assert (estimate, high) == (0.0, 0.0)
    assert accuracy.sum_interval(30.0, 100.0, bounds=(-10, 10))[1] == pytest.approx(
        30 - accuracy.Z95 * 10
    )
    assert accuracy.sum_interval(30.0, 100.0, bounds=None)[1] < 30


def quantile_case(values: np.ndarray, grid: tuple[float, ...], bounds: tuple[float, float]):
    """Exact bins of `values` over `grid` ((c_{j-1}, c_j], then above c_{m-1}) and the data's
    median (the ceil(n/2)-th smallest value)."""
    index = np.searchsorted(np.asarray(grid), values, side="left")
    exact = np.bincount(index, minlength=len(grid) + 1).astype(np.float64)
    ordered = np.sort(values)
    return exact, float(ordered[math.ceil(0.5 * len(values)) - 1])


@pytest.mark.parametrize(
    ("name", "sigma", "step", "integer"),
    [
        ("coarse grid, little noise", 3.16, 2000.0, True),  # the audit's 0-of-1,000 case
        ("coarse grid, much noise", 30.0, 2000.0, True),
        ("fine grid, much noise", 10.0, 100.0, False),
        ("every integer", 3.0, 1.0, True),
    ],
)
def test_quantile_intervals_cover_the_datas_quantile(
    name: str, sigma: float, step: float, integer: bool
) -> None:
    rng = np.random.default_rng(int(step))
    z = np.asarray(sorted(rng.normal(size=1001)))
    scale = 7800.0 if step > 1 else 30.0
    values = np.clip(scale * np.exp(0.8 * z), 0, 100 * step)
    values = np.rint(values) if integer else values
    bounds = (0.0, 100 * step)
    grid = tuple(float(step * i) for i in range(101))
    exact, median = quantile_case(values, grid, bounds)
    misses = zero_width = 0
    for _ in range(TRIALS // 4):
        bins = exact + (np.rint(rng.normal(0, sigma, len(exact))) if integer else 0)
        if not integer:
            bins = exact + rng.normal(0, sigma, len(exact))
        estimate, low, high = accuracy.quantile_from_bins(
            list(bins), grid, 0.5, sigma**2, bounds=bounds, integer=integer
        )
        assert low <= estimate <= high
        # Never narrower than the bin that holds the estimate (here: one grid step).
        assert high - low >= step
        zero_width += low == high
        misses += not low <= median <= high
    assert zero_width == 0
    assert within(misses, TRIALS // 4, 0.05), name


def test_a_quantile_in_the_top_bin_reaches_the_upper_bound() -> None:
    grid = (10.0, 20.0, 30.0)
    bins = [0.0, 0.0, 5.0, 95.0]  # most values above the last candidate
    estimate, low, high = accuracy.quantile_from_bins(
        grid=grid, bins=bins, q=0.5, bin_variance=1.0, bounds=(0, 100)
    )
    assert 30 < estimate <= 100
    assert (low, high) == (30.0, 100.0)
    # Without bounds (releases from before nodes sent them): the outer candidates.
    assert accuracy.quantile_from_bins(bins, grid, 0.5, 1.0)[2] == 30.0
    assert accuracy.grid_resolution(grid, (0, 100)) == 70.0
    assert accuracy.grid_resolution(grid, None) == 10.0


def test_suppression_rules() -> None:
    common = {"estimate": 50.0, "ci95_low": 40.0, "ci95_high": 60.0}
    assert (
        accuracy.suppression_reason(
            cell_size=5, min_cell_size=10, max_ci_relative_width=None, **common
        )
        == "below_min_cell_size"
    )
    assert (
        accuracy.suppression_reason(
            cell_size=0, min_cell_size=0, max_ci_relative_width=None, **common
        )
        == "below_min_cell_size"
    )
    assert (
        accuracy.suppression_reason(
            cell_size=50, min_cell_size=10, max_ci_relative_width=0.1, **common
        )
        == "interval_too_wide"
    )
    assert (
        accuracy.suppression_reason(
            cell_size=50, min_cell_size=10, max_ci_relative_width=0.5, **common
        )
        is None
    )
