"""How intervals and suppression are defined, shared by node and hub so both agree.

Every count released by a node carries independent discrete Gaussian noise of standard
deviation `sigma`. A `share` cell is built from two noisy counts of disjoint rows,
`match` (column == value) and `other` (column is another level): numerator = match,
denominator = match + other. So Var(num) = s2, Var(den) = 2*s2, Cov(num, den) = s2, where
s2 is the sum of sigma**2 over the nodes combined. Intervals describe the DP noise only
(the distance between the release and the exact value on the node's data), not sampling
error of the survey.
"""

import math

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
