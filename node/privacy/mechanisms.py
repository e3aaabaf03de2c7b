"""OpenDP Gaussian measurements with closed-form scales, cached, each checked against its cost.

The noise scale of a Gaussian mechanism with L2 sensitivity Delta that must cost at most rho
(zCDP) is sigma = Delta / sqrt(2 rho) (Bun & Steinke 2016, Prop. 1.6): no search. OpenDP's
own privacy map is still checked (`meas.map(Delta) <= rho`) before any noise is drawn.
Measurements depend only on (type, scale), so they are built once and reused.
"""

import math
from collections.abc import Sequence
from functools import lru_cache
from statistics import NormalDist
from typing import Any, Literal

import numpy as np
import opendp.prelude as dp

from node.privacy.exceptions import CostCheckFailed, NoiseOutOfRange

# sigma from the closed form can round below what the map needs; a tiny nudge keeps
# meas.map(Delta) <= rho without a search.
SCALE_NUDGE = 1 + 1e-9
# The largest noise scales a release may carry. Discrete noise is drawn as i64 and goes on
# the wire as floats: at 1e12, 40 sigma stays far inside 2^53 (exact integers) and i64 never
# saturates (OpenDP clamps there). Continuous scales need only finite squares and products
# (variances of sums of bounded values can be legitimately large).
MAX_SCALE: dict[str, float] = {"discrete_gaussian": 1e12, "gaussian": 1e100}
# The delta of the (epsilon, delta)-DP statement derived from rho-zCDP (docs/privacy.md).
DELTA = 1e-7
Kind = Literal["discrete_gaussian", "gaussian"]
# Scales up to this get the exact discrete quantile from a pmf table of 12 scale entries
# (about 100 KB); above it the closed form, constant in memory (docs/privacy.md).
EXACT_SCALE_LIMIT = 1000.0
# Relative excess of the discrete Gaussian's normaliser over s sqrt(2 pi) for s >= 1
# (2 exp(-2 pi^2) / (1 - exp(-6 pi^2)) < 6e-9, Poisson summation).
SUMMATION_ETA = 6e-9


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


def check(*, kind: Kind, scale: float, sensitivity: float, rho: float) -> None:
    """Refuse a measurement before anything is charged: its scale out of range, or its
    OpenDP privacy map above `rho`. Cheap (closed forms, cached), draws no noise."""
    if not math.isfinite(scale) or not 0 < scale <= MAX_SCALE[kind]:
        raise NoiseOutOfRange("the query's rho is too small for any usable release of this measure")
    if not _checked(kind, scale, sensitivity, rho):
        raise CostCheckFailed("the measurement would cost more than the query's rho")


def release(
    *, kind: Kind, scale: float, sensitivity: float, rho: float, values: Sequence[float]
) -> list[float]:
    """Noisy copy of `values`, after checking OpenDP's privacy map against `rho`."""
    check(kind=kind, scale=scale, sensitivity=sensitivity, rho=rho)
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
    """Smallest integer h with P(|X| <= h) >= coverage for the discrete Gaussian of `scale`.

    Up to EXACT_SCALE_LIMIT it is summed from the pmf (proportional to
    exp(-k^2 / (2 scale^2))): OpenDP's `discrete_gaussian_scale_to_accuracy` is a tail
    bound, conservative for small scales (97% at scale 10); this is the exact quantile, so
    intervals cover 95% to 95% + one pmf step. Above it, `_closed_form_half_width` gives the
    same h or h + 1 in constant memory: an analyst's tiny rho makes the scale huge, and a
    table as long as 12 scale would take gigabytes (tests/node/test_privacy_statistics.py
    checks both).
    """
    if scale <= 0:
        return 0.0
    if scale > EXACT_SCALE_LIMIT:
        return _closed_form_half_width(scale, coverage)
    ks = np.arange(0, math.ceil(12 * scale) + 2, dtype=np.float64)
    weights = np.exp(-(ks * ks) / (2 * scale * scale))
    weights[1:] *= 2
    cumulative = np.cumsum(weights) / weights.sum()
    return float(np.searchsorted(cumulative, coverage))


def _closed_form_half_width(scale: float, coverage: float) -> float:
    """A half-width that covers at least `coverage`, and at most one pmf step more, for
    scale s >= 10 (used above EXACT_SCALE_LIMIT).

    Why it covers. Let f(x) = exp(-x^2 / (2 s^2)), X discrete Gaussian: P(|X| <= h) = S / Z
    with S = sum_{|k| <= h} f(k) and Z = sum_k f(k).
    * Poisson summation: Z = s sqrt(2 pi) (1 + 2 sum_{m >= 1} exp(-2 pi^2 s^2 m^2)), so
      1 <= Z / (s sqrt(2 pi)) <= 1 + eta with eta = 6e-9 for s >= 1.
    * Midpoint rule on each cell [k - 1/2, k + 1/2]: f(k) = integral - f''(xi) / 24, and
      |f''(x)| = f(x) |x^2 - s^2| / s^4 <= 1 / s^2, so S >= s sqrt(2 pi) G(h) - (2h + 1) /
      (24 s^2) with G(h) = 2 Phi((h + 1/2) / s) - 1, the normal mass of [-h - 1/2, h + 1/2].
    * Hence P(|X| <= h) >= (G(h) - (2h + 1) / (24 sqrt(2 pi) s^3)) / (1 + eta). For h <= 3 s
      the subtracted term is at most 0.12 / s^2, so G(h) >= coverage (1 + eta) + 0.12 / s^2
      guarantees the coverage; the smallest such h is the ceiling below, and it is <= 3 s.
    Why it is tight. The same bounds the other way show the exact quantile h* needs G(h*)
    >= coverage - 0.12 / s^2; G grows by about 0.117 / s per unit of h near h*, so the
    closed form exceeds h* by less than 2 / s + 1, i.e. it is h* or h* + 1 for s >= 10.
    Floating point: s z is exact to ~1e-16 s, far inside the eta margin (~5e-8 s).
    """
    margin = coverage * SUMMATION_ETA + 0.12 / (scale * scale)
    z = NormalDist().inv_cdf((1 + coverage + margin) / 2)
    return float(math.ceil(scale * z - 0.5))


@lru_cache(maxsize=256)
def epsilon(rho: float, delta: float = DELTA) -> float:
    """The epsilon of the (epsilon, delta)-DP guarantee implied by rho-zCDP (OpenDP's
    conversion, on a Gaussian measurement costing exactly rho)."""
    meas = dp.c.make_zCDP_to_approxDP(measurement("gaussian", 1.0))
    return float(meas.map(math.sqrt(2 * rho)).epsilon(delta))  # type: ignore[no-untyped-call]
