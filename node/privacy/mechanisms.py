"""OpenDP Gaussian measurements with closed-form scales, cached, each checked against its cost.

The noise scale of a Gaussian mechanism with L2 sensitivity Delta that must cost at most rho
(zCDP) is sigma = Delta / sqrt(2 rho) (Bun & Steinke 2016, Prop. 1.6): no search. OpenDP's
own privacy map is still checked (`meas.map(Delta) <= rho`) before any noise is drawn.
Measurements depend only on (type, scale), so they are built once and reused.
"""

import math
from collections.abc import Sequence
from functools import lru_cache
from typing import Any, Literal

import numpy as np
import opendp.prelude as dp

from node.privacy.exceptions import CostCheckFailed

# sigma from the closed form can round below what the map needs; a tiny nudge keeps
# meas.map(Delta) <= rho without a search.
SCALE_NUDGE = 1 + 1e-9
# The delta of the (epsilon, delta)-DP statement derived from rho-zCDP (docs/privacy.md).
DELTA = 1e-7
Kind = Literal["discrete_gaussian", "gaussian"]


def noise_scale(*, rho: float, sensitivity: float) -> float:
    return sensitivity / math.sqrt(2 * rho) * SCALE_NUDGE


@lru_cache(maxsize=256)
def measurement(kind: Kind, scale: float) -> Any:
    """The vector Gaussian measurement: integers (discrete) or floats (continuous), L2."""
    if kind == "discrete_gaussian":
        domain = dp.vector_domain(dp.atom_domain(T="i64"))
        return dp.m.make_gaussian(domain, dp.l2_distance(T="i64"), scale=scale)
    domain = dp.vector_domain(dp.atom_domain(T="f64", nan=False))
    return dp.m.make_gaussian(domain, dp.l2_distance(T="f64"), scale=scale)


@lru_cache(maxsize=1024)
def _checked(kind: Kind, scale: float, sensitivity: float, rho: float) -> bool:
    meas = measurement(kind, scale)
    d_in = int(sensitivity) if kind == "discrete_gaussian" else float(sensitivity)
    return bool(meas.map(d_in) <= rho)


def release(
    *, kind: Kind, scale: float, sensitivity: float, rho: float, values: Sequence[float]
) -> list[float]:
    """Noisy copy of `values`, after checking OpenDP's privacy map against `rho`."""
    if not _checked(kind, scale, sensitivity, rho):
        raise CostCheckFailed("the measurement would cost more than the query's rho")
    meas = measurement(kind, scale)
    if kind == "discrete_gaussian":
        return [float(v) for v in meas([int(v) for v in values])]
    return [float(v) for v in meas([float(v) for v in values])]


def accuracy(kind: Kind, scale: float) -> float:
    """Half-width of the 95% interval of one noisy value (OpenDP's accuracy functions)."""
    return _accuracy(kind, scale)


@lru_cache(maxsize=256)
def _accuracy(kind: Kind, scale: float) -> float:
    if kind == "discrete_gaussian":
        return discrete_half_width(scale)
    return float(dp.gaussian_scale_to_accuracy(scale, alpha=0.05))


def discrete_half_width(scale: float, coverage: float = 0.95) -> float:
    """Smallest integer h with P(|X| <= h) >= coverage for the discrete Gaussian of `scale`,
    summed from its pmf (proportional to exp(-k^2 / (2 scale^2))). OpenDP's
    `discrete_gaussian_scale_to_accuracy` is a tail bound, conservative for small scales
    (97% at scale 10); this is the exact quantile, so intervals cover 95% to 95% + one
    pmf step, as tests/node/test_privacy_statistics.py checks."""
    if scale <= 0:
        return 0.0
    ks = np.arange(0, math.ceil(12 * scale) + 2, dtype=np.float64)
    weights = np.exp(-(ks * ks) / (2 * scale * scale))
    weights[1:] *= 2
    cumulative = np.cumsum(weights) / weights.sum()
    return float(np.searchsorted(cumulative, coverage))


@lru_cache(maxsize=256)
def epsilon(rho: float, delta: float = DELTA) -> float:
    """The epsilon of the (epsilon, delta)-DP guarantee implied by rho-zCDP (OpenDP's
    conversion, on a Gaussian measurement costing exactly rho)."""
    meas = dp.c.make_zCDP_to_approxDP(measurement("gaussian", 1.0))
    return float(meas.map(math.sqrt(2 * rho)).epsilon(delta))  # type: ignore[no-untyped-call]
