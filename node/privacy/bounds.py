"""Public bounds for a numeric column, proposed from its data by a differentially private rule.

A contract's bounds are public. Taken from the data's exact minimum and maximum they would
publish the most extreme respondent's value (the canary's income). This rule, in the spirit
of Google's ApproxBounds, looks only at a noisy histogram of the values over a public grid:

* bins of |value| between consecutive edges 0.001, 0.002, 0.005, 0.01, ... 5e9 (a 1-2-5
  grid), one set for values >= 0 and one for negative values, plus an overflow bin each;
* the count of every bin gets discrete Gaussian noise for `rho` (zCDP) with L2 sensitivity
  `contributions` (one unit's rows can all fall in one bin), privacy map checked by OpenDP;
* a bin "registers" when its noisy count exceeds a threshold that an empty bin passes with
  probability at most 1e-3 over the whole grid (about 20 rows at the default rho). A bin
  needs that many rows to show, so the tail above the highest registered bin is thin, not
  empty: the bound goes one grid step further. The upper bound is the edge one step above
  the highest registered non-negative bin (0 if none), the lower bound minus the same for
  negative values (0 if none: the public floor of most survey numbers);
* nothing registered, or an overflow bin registered: no proposal (too few rows, or values
  beyond the grid), and the steward sets the bounds from public knowledge.

The result is post-processing of one DP release, so publishing it costs `rho` once per
column, whatever the steward does with it. Values outside a proposal are clipped at query
time (the draft sets `bounds_policy: clip`), so the rule may cut a thin tail.
"""

import math
from statistics import NormalDist

import numpy as np

from node.privacy import mechanisms

BOUNDS_RHO = 0.02
FALSE_POSITIVE = 1e-3
EDGES = tuple(step * 10.0**exponent for exponent in range(-3, 10) for step in (1, 2, 5))


def threshold(scale: float, bins: int) -> float:
    """The noisy count an empty bin exceeds with probability FALSE_POSITIVE over `bins`."""
    return scale * NormalDist().inv_cdf(1 - FALSE_POSITIVE / bins)


def propose_bounds(
    values: np.ndarray,
    *,
    contributions: int,
    integer: bool,
    rho: float = BOUNDS_RHO,
) -> tuple[float, float] | None:
    """DP bounds (lower, upper) for `values` (finite numbers), or None: see the module doc."""
    finite = values[np.isfinite(values)]
    grid = np.asarray(EDGES)
    bins = len(EDGES) + 1  # the last one takes what lies beyond the grid
    where = np.searchsorted(grid, np.abs(finite), side="left")
    positive = np.bincount(where[finite >= 0], minlength=bins)
    negative = np.bincount(where[finite < 0], minlength=bins)
    scale = mechanisms.noise_scale(rho=rho, sensitivity=contributions)
    noisy = mechanisms.release(
        kind="discrete_gaussian",
        scale=scale,
        sensitivity=contributions,
        rho=rho,
        values=[*negative.tolist(), *positive.tolist()],
    )
    cut = threshold(scale, 2 * bins)
    registered_negative = [i for i, c in enumerate(noisy[:bins]) if c > cut]
    registered_positive = [i for i, c in enumerate(noisy[bins:]) if c > cut]
    if not registered_negative and not registered_positive:
        return None
    if bins - 1 in registered_negative or bins - 1 in registered_positive:
        return None
    last = len(EDGES) - 1
    upper = EDGES[min(max(registered_positive) + 1, last)] if registered_positive else 0.0
    lower = -EDGES[min(max(registered_negative) + 1, last)] if registered_negative else 0.0
    if integer:
        return float(math.floor(lower)), float(math.ceil(upper))
    return lower, upper
