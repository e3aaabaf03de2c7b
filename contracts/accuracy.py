"""How intervals and suppression are defined, shared by node and hub so both agree.

Every count released by a node carries independent discrete Gaussian noise of standard
deviation `sigma`. A `share` cell is built from two noisy counts of disjoint rows,
`match` (column == value) and `other` (column is another level): numerator = match,
denominator = match + other. So Var(num) = s2, Var(den) = 2*s2, Cov(num, den) = s2, where
s2 is the sum of sigma**2 over the nodes combined. Intervals describe the DP noise only
(the distance between the release and the exact value on the node's data), not sampling
error of the survey.

Other measures (docs/privacy.md) carry their noise variances in each cell, so the hub needs
no knowledge of how a node measured: linear estimates (count, sum, histogram bins) add with
their variances; ratios (share, mean) propagate numerator and denominator variances and
their covariance by the delta method (`ratio_interval`); quantiles are re-estimated from
pooled noisy counts over a public candidate grid (`quantile_from_bins`).
"""

import math
from collections.abc import Sequence

from contracts.v1.release import SuppressionReason

Z95 = 1.959963984540054


def count_interval(estimate: float, noise_variance: float) -> tuple[float, float]:
    """Normal 95% interval of a sum of independent Gaussian-noised counts."""
    half = Z95 * math.sqrt(noise_variance)
    return estimate - half, estimate + half


def share_estimate(numerator: float, denominator: float) -> float:
    return min(1.0, max(0.0, numerator / denominator))


def share_interval(numerator: float, denominator: float, s2: float) -> tuple[float, float]:
    """Delta-method 95% interval of num/den under the noise structure above, clipped to [0, 1].

    Var(p) ~ (Var(N) - 2p Cov(N, D) + p^2 Var(D)) / D^2 = s2 (1 - 2p + 2p^2) / D^2.
    """
    p = share_estimate(numerator, denominator)
    half = Z95 * math.sqrt(s2 * (1 - 2 * p + 2 * p * p)) / denominator
    return max(0.0, p - half), min(1.0, p + half)


def ratio_half_width(
    ratio: float,
    denominator: float,
    *,
    numerator_variance: float,
    denominator_variance: float,
    covariance: float,
) -> float:
    """Delta-method 95% half-width of N/D: Var ~ (Var N - 2r Cov + r^2 Var D) / D^2."""
    var = numerator_variance - 2 * ratio * covariance + ratio * ratio * denominator_variance
    return Z95 * math.sqrt(max(var, 0.0)) / denominator


def quantile_from_bins(
    bins: Sequence[float], grid: Sequence[float], q: float, bin_variance: float
) -> tuple[float, float, float]:
    """Estimate and 95% interval of the q-quantile from noisy counts over a candidate grid.

    `grid` holds m increasing candidates c_0..c_{m-1}; `bins` holds m + 1 noisy counts:
    bin j counts values in (c_{j-1}, c_j] (c_{-1} = -inf), bin m values above c_{m-1}; each
    bin's noise is independent with variance `bin_variance`. The target is the smallest
    candidate c_j with F_j >= q T (F_j: count <= c_j, T: total). With
    D_j = F_j - q T = (1 - q) sum_{i<=j} b_i - q sum_{i>j} b_i, whose noise has variance
    V_j = bin_variance ((j + 1)(1 - q)^2 + (m - j) q^2):
    estimate = smallest c_j with noisy D_j >= 0; interval = [smallest c_j not rejecting
    D_j >= 0 (noisy D_j + z sqrt(V_j) >= 0), smallest c_j confirming it (noisy D_j -
    z sqrt(V_j) >= 0)], z = 1.96 (test inversion, one test per side). When no candidate
    passes, the last candidate is used. Documented and tested in docs/privacy.md.
    """
    m = len(grid)
    total = float(sum(bins))
    estimate = low = high = None
    cumulative = 0.0
    for j in range(m):
        cumulative += bins[j]
        d = cumulative - q * total
        sd = math.sqrt(max(bin_variance, 0.0) * ((j + 1) * (1 - q) ** 2 + (m - j) * q * q))
        if low is None and d + Z95 * sd >= 0:
            low = grid[j]
        if estimate is None and d >= 0:
            estimate = grid[j]
        if high is None and d - Z95 * sd >= 0:
            high = grid[j]
            break
    last = float(grid[-1])
    return (
        float(estimate) if estimate is not None else last,
        float(low) if low is not None else last,
        float(high) if high is not None else last,
    )


def suppression_reason(
    *,
    cell_size: float,
    estimate: float,
    ci95_low: float,
    ci95_high: float,
    min_cell_size: int,
    max_ci_relative_width: float | None,
) -> SuppressionReason | None:
    """Why a cell must be withheld, or None.

    `cell_size` is the noisy count (the denominator for shares).

    A cell with no positive noisy size is always withheld: a ratio over it means nothing.
    """
    if cell_size < max(min_cell_size, 1):
        return "below_min_cell_size"
    if max_ci_relative_width is not None:
        width = ci95_high - ci95_low
        if estimate <= 0 or width / abs(estimate) > max_ci_relative_width:
            return "interval_too_wide"
    return None
