"""Secure aggregation at the node: its share of distributed discrete Gaussian noise, and the
pairwise masks that hide its vector from the hub. See docs/privacy.md (Secure aggregation).

Noise. Each of the k members adds discrete Gaussian noise N_Z(0, s^2) to its exact integer
vector; the hub sees only the sum. If up to t members collude with the hub, the other
n = k - t shares still sum to noise that protects every honest member, and Kairouz, Liu &
Steinke (ICML 2021, "The Distributed Discrete Gaussian Mechanism for Federated Learning with
Secure Aggregation", Proposition 14) bound it: for s >= 1/2, every integer shift D of
dimension d and every alpha > 1, the Renyi divergence of the sum of n shares is at most

    min( alpha |D|_2^2 / (2 n s^2) + tau d,
         alpha/2 (|D|_2^2 / (n s^2) + 2 |D|_1 tau / (sqrt(n) s) + tau^2 d),
         alpha/2 (|D|_2 / (sqrt(n) s) + tau sqrt(d))^2 ),
    tau = 10 sum_{j=1}^{n-1} exp(-2 pi^2 s^2 j / (j + 1)).

Dividing each bound by alpha (and alpha > 1 for the additive tau d) gives a zCDP rho for
each; `ddg_rho` takes the smallest. `share_scale` picks the smallest s >= 1/2 whose rho is
within the query's; with n = 1 (tau = 0) that is the central scale exactly, and for the
usual scales tau is below 1e-9, so the k shares add up to the central release's noise.

Masks. Members i and j agree on a 32-byte seed by X25519 between their fresh per-attempt
keys, expanded with HKDF-SHA256 bound to the query, attempt, pair and component, and then
with SHAKE-256 into a vector uniform on Z / 2^64. The lower node id adds it, the higher one
subtracts it: over the whole roster every mask cancels exactly, while any one member's
masked vector (or any sum over a strict subset) is uniform to whoever lacks a seed.
"""

import base64
import hashlib
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from contracts.v1 import DatasetContract, QuerySpec
from node.privacy import engine, mechanisms
from node.privacy.exceptions import CostCheckFailed, NoiseOutOfRange

# Proposition 14 needs every share's scale to be at least 1/2.
MIN_SHARE_SCALE = 0.5
# The centred sum of `sum` is rounded to a public grid of this many steps per row's range:
# rounding moves each cell by at most half a step (the noise is thousands of steps wide).
SUM_STEPS = 1024
MASK_CONTEXT = b"sauti-secure-aggregation-v1"
# A plan may carry this much more noise variance (0.5% more error) for more noise adders.
PLAN_SLACK = 0.01


def tau(*, scale: float, honest: int) -> float:
    """Kairouz et al.'s tau for n = `honest` shares of scale `scale`."""
    j = np.arange(1, honest, dtype=np.float64)
    return float(10 * np.exp(-2 * math.pi**2 * scale**2 * j / (j + 1)).sum())


def ddg_rho(*, scale: float, honest: int, dims: int, l1: float, l2: float) -> float:
    """The zCDP rho of the sum of `honest` discrete Gaussian shares (Proposition 14)."""
    if scale < MIN_SHARE_SCALE:
        raise CostCheckFailed("a noise share below scale 1/2 is outside the privacy bound")
    t = tau(scale=scale, honest=honest)
    total = honest * scale**2
    return min(
        l2**2 / (2 * total) + t * dims,
        (l2**2 / total + 2 * l1 * t / math.sqrt(total) + t**2 * dims) / 2,
        (l2 / math.sqrt(total) + t * math.sqrt(dims)) ** 2 / 2,
    )


@lru_cache(maxsize=1024)
def share_scale(*, rho: float, honest: int, dims: int, l1: float, l2: float) -> float:
    """The smallest share scale (>= 1/2) whose `honest` shares together cost at most `rho`."""
    central = l2 / math.sqrt(2 * rho)
    low = max(MIN_SHARE_SCALE, central / math.sqrt(honest))
    if ddg_rho(scale=low, honest=honest, dims=dims, l1=l1, l2=l2) <= rho:
        return low * mechanisms.SCALE_NUDGE
    high = low * 2
    while ddg_rho(scale=high, honest=honest, dims=dims, l1=l1, l2=l2) > rho:
        high *= 2
    for _ in range(60):  # bisection: rho falls as the scale grows
        middle = (low + high) / 2
        if ddg_rho(scale=middle, honest=honest, dims=dims, l1=l1, l2=l2) <= rho:
            high = middle
        else:
            low = middle
    return high


def add_noise_share(values: np.ndarray, scale: float) -> np.ndarray:
    """`values` (integers) plus this node's discrete Gaussian share (OpenDP's sampler).

    OpenDP's own map would price this one share as a whole release; the share's cost is
    the sum's, checked by `ddg_rho` above, so the map is not consulted here.
    """
    meas = mechanisms.measurement("discrete_gaussian", scale)
    return np.asarray(meas([int(v) for v in values]), dtype=np.int64)


def sum_granularity(span: float) -> float:
    """The real value of one integer step of a centred sum whose rows move it by `span`."""
    return span / SUM_STEPS if span > 0 else 1.0


@dataclass(frozen=True)
class Sensitivity:
    l1: float
    l2: float


def rounded_sum_sensitivity(*, rows: int) -> Sensitivity:
    """Neighbours move at most `rows` cells of the exact centred sum by at most one span in
    total; on the grid of `sum_granularity` that is SUM_STEPS steps, plus at most one step
    of rounding in each moved cell."""
    return Sensitivity(l1=SUM_STEPS + rows, l2=SUM_STEPS + math.sqrt(rows))


@dataclass(frozen=True)
class NoisePlan:
    """Which members add a share (the first `adders` by node id) and of what scale."""

    adders: int
    scale: float


@lru_cache(maxsize=1024)
def noise_plan(
    *, rho: float, members: int, collusion: int, dims: int, l1: float, l2: float
) -> NoisePlan:
    """The fewest total noise for `rho` when any `collusion` members may side with the hub.

    n of the k members add a share each, sized so that any n - t of them cost `rho`
    (t = min(collusion, k - 1)). With n = k that is the plain rule "each of k nodes adds
    noise for k - t"; when those shares would be small, tau grows and so does the scale
    the bound asks for, and fewer, larger shares reach the same rho with less total noise.
    Of the plans within PLAN_SLACK of the least total noise it takes the one with the most
    adders. n and the scale follow from public numbers, so every member computes the same.
    """
    t = min(collusion, members - 1)
    plans = [
        NoisePlan(adders, share_scale(rho=rho, honest=adders - t, dims=dims, l1=l1, l2=l2))
        for adders in range(t + 1, members + 1)
    ]
    least = min(p.adders * p.scale**2 for p in plans)
    # Among plans within PLAN_SLACK of the least noise, the most adders: a member who
    # colludes after all then removes the smallest part of the noise.
    return max(
        (p for p in plans if p.adders * p.scale**2 <= least * (1 + PLAN_SLACK)),
        key=lambda p: p.adders,
    )


@dataclass(frozen=True)
class Share:
    """One component's exact integer vector plus this node's noise share (not yet masked)."""

    name: str
    values: np.ndarray
    granularity: float
    sensitivity: Sensitivity
    plan: NoisePlan
    share_scale: float  # this node's own share: plan.scale, or 0 when it adds none
    rho: float


def noisy_shares(
    exact: engine.Exact,
    *,
    keys: Sequence[tuple[str, ...]],
    contract: DatasetContract,
    spec: QuerySpec,
    rho: float,
    rank: int,
    members: int,
    collusion: int,
) -> list[Share]:
    """The node's integer vectors (count; and the rounded centred sum of `sum`), each with
    its share of the noise when its `rank` (0-based, by node id) is among the plan's
    adders; rho is split as the engine splits it (COUNT_SHARE for the count of `sum`).

    Vectors are laid out over `keys` (the roster's cells, a superset of this node's): a
    level this node's contract lacks is a structural zero, noised like every other entry."""
    rows = contract.privacy.max_contributions
    place = _placement(exact.keys, keys)
    vectors = {"count": place(np.rint(np.asarray(exact.values["count"])).astype(np.int64))}
    if spec.measure == "sum":
        low, high = bounds(contract, spec)
        step = sum_granularity(rows * (high - low) / 2)
        vectors["sum"] = place(np.rint(np.asarray(exact.values["sum"]) / step).astype(np.int64))
    shares = []
    for part in _parts(contract, spec, rho):
        name, step, sensitivity, part_rho = part.name, part.step, part.sensitivity, part.rho
        values = vectors[name]
        plan = noise_plan(
            rho=part_rho,
            members=members,
            collusion=collusion,
            dims=len(values),
            l1=sensitivity.l1,
            l2=sensitivity.l2,
        )
        adds = rank < plan.adders
        noisy = add_noise_share(values, plan.scale) if adds else values
        shares.append(
            Share(name, noisy, step, sensitivity, plan, plan.scale if adds else 0.0, part_rho)
        )
    return shares


@dataclass(frozen=True)
class _Part:
    """One noised vector of a contribution: its grid step, sensitivity and share of rho."""

    name: str
    step: float
    sensitivity: Sensitivity
    rho: float


def _parts(contract: DatasetContract, spec: QuerySpec, rho: float) -> list[_Part]:
    """The count (and the rounded centred sum of `sum`), rho split as the engine splits it."""
    rows = contract.privacy.max_contributions
    rho_count = rho * engine.COUNT_SHARE if spec.measure == "sum" else rho
    parts = [_Part("count", 1.0, Sensitivity(l1=rows, l2=rows), rho_count)]
    if spec.measure == "sum":
        low, high = bounds(contract, spec)
        step = sum_granularity(rows * (high - low) / 2)
        parts.append(_Part("sum", step, rounded_sum_sensitivity(rows=rows), rho - rho_count))
    return parts


def check_shares(
    *,
    cells: int,
    contract: DatasetContract,
    spec: QuerySpec,
    rho: float,
    members: int,
    collusion: int,
) -> None:
    """Refuse, before any charge, a contribution whose noise shares cannot be drawn: each
    part's plan is computed (closed forms and a bisection, cached; no noise drawn) and its
    scale held to what a discrete Gaussian on i64 can carry."""
    inner = 2 if spec.measure == "share" else 1
    for part in _parts(contract, spec, rho):
        plan = noise_plan(
            rho=part.rho,
            members=members,
            collusion=collusion,
            dims=cells * inner,
            l1=part.sensitivity.l1,
            l2=part.sensitivity.l2,
        )
        if not math.isfinite(plan.scale) or plan.scale > mechanisms.MAX_SCALE["discrete_gaussian"]:
            raise NoiseOutOfRange("the query's rho is too small for any usable secure contribution")


def _placement(
    own: Sequence[tuple[str, ...]], keys: Sequence[tuple[str, ...]]
) -> Callable[[np.ndarray], np.ndarray]:
    """Lay a vector over `own` keys (inner entries per key kept together) onto `keys`."""
    if tuple(own) == tuple(keys):
        return lambda values: values
    index = {key: i for i, key in enumerate(keys)}
    positions = np.array([index[key] for key in own], dtype=np.int64)

    def place(values: np.ndarray) -> np.ndarray:
        inner = len(values) // max(len(own), 1)
        out = np.zeros((len(keys), inner), dtype=values.dtype)
        out[positions] = values.reshape(len(own), inner)
        return out.reshape(-1)

    return place


def bounds(contract: DatasetContract, spec: QuerySpec) -> tuple[float, float]:
    """The public bounds of a `sum`'s column ((0, 0) for counts and shares)."""
    if spec.measure != "sum":
        return 0.0, 0.0
    column = contract.column(str(spec.column))
    assert column is not None
    assert column.lower is not None
    assert column.upper is not None
    return column.lower, column.upper


def public_key_text(key: X25519PublicKey) -> str:
    raw = key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def load_public_key(text: str) -> X25519PublicKey:
    return X25519PublicKey.from_public_bytes(base64.urlsafe_b64decode(text + "="))


def pair_seed(
    private: X25519PrivateKey,
    peer: X25519PublicKey,
    *,
    context: str,
    pair: tuple[str, str],
    component: str,
) -> bytes:
    """The seed both members of `pair` derive for one component of one attempt."""
    low, high = sorted(pair)
    info = b"|".join(
        (MASK_CONTEXT, context.encode(), low.encode(), high.encode(), component.encode())
    )
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info)
    return hkdf.derive(private.exchange(peer))


def mask(seed: bytes, length: int) -> np.ndarray:
    """A vector uniform on Z / 2^64 from a 32-byte seed (SHAKE-256 as the stream)."""
    if length == 0:
        return np.zeros(0, dtype=np.uint64)
    stream = hashlib.shake_256(seed).digest(8 * length)
    return np.frombuffer(stream, dtype="<u8").astype(np.uint64)


def vector_text(values: np.ndarray) -> str:
    """A vector of Z / 2^64 as the wire carries it: little-endian uint64, base64url."""
    raw = values.astype("<u8").tobytes()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def masked(
    values: np.ndarray,
    *,
    node_id: str,
    private: X25519PrivateKey,
    peers: Mapping[str, X25519PublicKey],
    context: str,
    component: str,
) -> np.ndarray:
    """`values` (int64) in Z / 2^64 plus every pairwise mask with `peers` (lower id adds)."""
    out = values.astype(np.int64).view(np.uint64).copy()
    for peer_id, public in peers.items():
        if peer_id == node_id:
            continue
        seed = pair_seed(
            private, public, context=context, pair=(node_id, peer_id), component=component
        )
        if node_id < peer_id:
            out += mask(seed, len(out))
        else:
            out -= mask(seed, len(out))
    return out
