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
their variances; ratios (share, mean) get Fieller's interval from the numerator and
denominator variances and their covariance (`ratio_interval`); quantiles are re-estimated
from pooled noisy counts over a public candidate grid (`quantile_from_bins`).

What is known without the data is used as post-processing, which can only keep a covering
interval covering: counts are >= 0, a sum of values clamped to [L, U] has the sign that L
and U force, a mean lies in [L, U], a share in [0, 1], a quantile between L and U.
"""

import itertools
import math
from collections.abc import Sequence

from contracts.v1.release import SuppressionReason

Z95 = 1.959963984540054


def count_interval(estimate: float, noise_variance: float) -> tuple[float, float]:
    """Normal 95% interval of a sum of independent Gaussian-noised counts, cut at 0: a count
    is never negative, so the cut keeps every covering interval covering (post-processing)."""
    half = Z95 * math.sqrt(noise_variance)
    return max(0.0, estimate - half), estimate + half


def sum_limits(low: float, high: float) -> tuple[float, float]:
    """What a sum of values clamped to [low, high] can be, whatever the (unknown) count:
    never below 0 when low >= 0, never above 0 when high <= 0."""
    return (0.0 if low >= 0 else -math.inf, 0.0 if high <= 0 else math.inf)


def sum_interval(
    estimate: float, noise_variance: float, *, bounds: tuple[float, float] | None
) -> tuple[float, float, float]:
    """Estimate and normal 95% interval of a noisy sum, both kept within `sum_limits` of the
    public value bounds (None: unknown, nothing cut)."""
    half = Z95 * math.sqrt(noise_variance)
    floor, ceiling = sum_limits(*bounds) if bounds is not None else (-math.inf, math.inf)
    low = min(ceiling, max(floor, estimate - half))
    high = min(ceiling, max(floor, estimate + half))
    return min(high, max(low, estimate)), low, high


def share_estimate(numerator: float, denominator: float) -> float:
    return min(1.0, max(0.0, numerator / denominator))


def ratio_interval(
    numerator: float,
    denominator: float,
    *,
    numerator_variance: float,
    denominator_variance: float,
    covariance: float,
    low: float = -math.inf,
    high: float = math.inf,
) -> tuple[float, float]:
    """Fieller's 95% confidence interval for theta = E[N] / E[D], cut to [low, high].

    N and D carry independent-of-the-data Gaussian noise with the given (co)variances, so
    for the true ratio theta the pivot N - theta D is exactly Normal(0, V(theta)) with
    V(theta) = Var N - 2 theta Cov + theta^2 Var D. The set {theta : (N - theta D)^2 <=
    z^2 V(theta)} is the quadratic a theta^2 - 2 b theta + c <= 0 with a = D^2 - z^2 Var D,
    b = N D - z^2 Cov, c = N^2 - z^2 Var N. It covers theta with probability 95% exactly,
    however small D is; the delta method's symmetric interval around N / D does not (it
    under-covers, on one side, when D is a small noisy count). When D is not significantly
    above 0 (a <= 0) the set is unbounded and the interval is the whole public range
    [low, high] (a ratio of values in that range lies in it): honest, not informative.
    N / D always lies inside the set, so the estimate lies inside the interval.
    """
    z2 = Z95 * Z95
    a = denominator * denominator - z2 * denominator_variance
    b = numerator * denominator - z2 * covariance
    c = numerator * numerator - z2 * numerator_variance
    if a <= 0:
        return low, high
    root = math.sqrt(max(b * b - a * c, 0.0))
    first, last = (b - root) / a, (b + root) / a
    return min(high, max(low, first)), min(high, max(low, last))


def share_interval(numerator: float, denominator: float, s2: float) -> tuple[float, float]:
    """95% interval of a share from its (match, match + other) noisy counts, each count with
    noise variance s2: Var N = s2, Var D = 2 s2, Cov = s2 (Fieller, cut to [0, 1])."""
    return ratio_interval(
        numerator,
        denominator,
        numerator_variance=s2,
        denominator_variance=2 * s2,
        covariance=s2,
        low=0.0,
        high=1.0,
    )


def extended_grid(grid: Sequence[float], bounds: tuple[float, float] | None) -> tuple[float, ...]:
    """The candidates with the ends of the value range added: [min(L, c_0), c_0, ..., c_{m-1},
    max(U, c_{m-1})]. Bin j of a quantile release holds the values in (e_j, e_{j+1}] of this
    list (bin 0 also its lower end). Without bounds (releases from before nodes sent them)
    the ends are the outer candidates themselves."""
    first, last = float(grid[0]), float(grid[-1])
    low, high = (min(bounds[0], first), max(bounds[1], last)) if bounds else (first, last)
    return (low, *(float(g) for g in grid), high)


def grid_resolution(grid: Sequence[float], bounds: tuple[float, float] | None) -> float:
    """The widest bin of a quantile grid (with the range's ends): a quantile interval is never
    narrower than the bin that holds the quantile, and its estimate is never further than
    this from the grid's own answer."""
    return max(b - a for a, b in itertools.pairwise(extended_grid(grid, bounds)))


def quantile_from_bins(
    bins: Sequence[float],
    grid: Sequence[float],
    q: float,
    bin_variance: float,
    *,
    bounds: tuple[float, float] | None = None,
    integer: bool = False,
) -> tuple[float, float, float]:
    """Estimate and 95% interval of the data's q-quantile from noisy counts over a grid.

    `grid` holds m increasing candidates c_0..c_{m-1}; `bins` holds m + 1 noisy counts with
    independent noise of variance `bin_variance`: bin j counts values in (c_{j-1}, c_j], bin m
    the values above c_{m-1}. Values were clamped to `bounds` = [L, U]; with the extended
    grid e = (c_{-1}, c_0, ..., c_m), c_{-1} = min(L, c_0), c_m = max(U, c_{m-1}), bin j
    holds the values in (c_{j-1}, c_j].

    The target is the data's quantile x: the smallest value with at least q n of the n values
    (weights for weighted releases) at or below it. It lies in the bin of the grid's answer
    c_j (the smallest candidate with F_j >= q n, F_j the count at or below c_j):
    c_{j-1} < x <= c_j. For k < m, D_k = F_k - q T (T the total) has noise variance
    V_k = bin_variance ((k + 1)(1 - q)^2 + (m - k) q^2); at k = m it is (1 - q) T >= 0.

    * low: c_{a-1}, a the smallest k with D_k + z sqrt(V_k) >= 0 (m if none). It misses x
      only if a > j, which needs the test at k = j to fail although D*_j >= 0: <= 2.5%.
    * high: c_b, b = 1 + the largest k with D_k - z sqrt(V_k) < 0 (0 if none). It misses x
      only if b < j, which needs the test at k = j - 1 to pass although D*_{j-1} < 0: <= 2.5%.
      (One test per side, not the smallest k passing, which is a union of tests.)
    * estimate: the first k with D_k >= 0, interpolated in (c_{k-1}, c_k] by the share of
      the bin's noisy count needed to reach q T (integer columns: the ceiling, so a bin of
      one integer gives that integer). It always lies in [low, high].

    So the interval covers x with probability >= 95% (normal approximation of the noise) and
    is never narrower than one bin of the extended grid. It is zero-width only when x is
    the lower end L = c_0 itself (then exactly right). Needs a positive total.
    """
    edges = extended_grid(grid, bounds)
    m = len(grid)
    total = float(sum(bins))
    z_sd = [
        Z95 * math.sqrt(max(bin_variance, 0.0) * ((k + 1) * (1 - q) ** 2 + (m - k) * q * q))
        for k in range(m)
    ]
    cumulative = list(itertools.accumulate(float(b) for b in bins[:m]))
    d = [f - q * total for f in cumulative]
    a = next((k for k in range(m) if d[k] + z_sd[k] >= 0), m)
    b = 1 + max((k for k in range(m) if d[k] - z_sd[k] < 0), default=-1)
    k = next((k for k in range(m) if d[k] >= 0), m)
    below = cumulative[k - 1] if k > 0 else 0.0
    mass = float(bins[k])
    share = min(1.0, max(0.0, (q * total - below) / mass)) if mass > 0 else 1.0
    width = edges[k + 1] - edges[k]
    estimate = edges[k] + share * width
    if integer:
        estimate = min(edges[k + 1], math.ceil(estimate - 1e-9))
    return estimate, edges[a], edges[b + 1]


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


# Of a mean's or sum's rho, the share spent on its count (the rest on the centred sum):
# the node engine's split (node/privacy/engine.py), so the hub predicts what nodes release.
COUNT_SHARE_OF_RHO = 1 / 3


def gaussian_sd(sensitivity: float, rho: float) -> float:
    """The noise standard deviation of a Gaussian mechanism costing `rho` (zCDP):
    rho = sensitivity^2 / (2 sigma^2)."""
    return sensitivity / math.sqrt(2 * rho)


def predicted_half_width(
    *,
    measure: str,
    rho: float,
    nodes: int,
    max_contributions: int = 1,
    bounds: tuple[float, float] | None = None,
    group_size: float = 100.0,
) -> float | None:
    """The half-width of a cell's 95% interval before the query runs, from the noise alone.

    Each of `nodes` nodes spends `rho` on its own rows (parallel composition), so noise
    variances add over nodes. Counts (and histogram bins) do not depend on the data; a
    ratio does, so a share is given for a group of `group_size` people at a share of one
    half, and a mean for `group_size` people. None where no fair figure exists without the
    data (a quantile: its interval depends on where the data fall in the grid).
    """
    if rho <= 0 or nodes < 1:
        return None
    k = float(max_contributions)
    if measure in ("count", "histogram"):
        return Z95 * math.sqrt(nodes) * gaussian_sd(k, rho)
    if measure == "share":
        s2 = nodes * gaussian_sd(k, rho) ** 2
        # Var(N - p D) / D^2 at p = 1/2: s2 (1 - 2p + 2p^2) / D^2 (accuracy of shares above).
        return Z95 * math.sqrt(0.5 * s2) / group_size
    if measure in ("sum", "mean") and bounds is not None:
        low, high = bounds
        count_sd = gaussian_sd(k, rho * COUNT_SHARE_OF_RHO)
        sum_sd = gaussian_sd(k * (high - low) / 2, rho * (1 - COUNT_SHARE_OF_RHO))
        if measure == "mean":
            return Z95 * math.sqrt(nodes) * sum_sd / group_size
        middle = (low + high) / 2
        return Z95 * math.sqrt(nodes * (sum_sd**2 + (middle * count_sd) ** 2))
    return None
