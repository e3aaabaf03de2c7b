"""Statistical tests of secure aggregation (issue #13): the pairwise masks cancel exactly and
hide each vector, the distributed noise shares add up to the central release's noise, and
the accounting of `noise_plan` holds, including against colluders.

Keys are fixed (`X25519PrivateKey.from_private_bytes`), so every mask is deterministic: a
uniformity test on masks either always passes or always fails. OpenDP samples noise from the
OS CSPRNG with no seed, so the noise tests are genuinely random and each threshold below is
set so that a correct implementation fails it with probability < P_FAIL = 1e-6:

* Variance: n values with known mean 0 and variance V (a sum of discrete Gaussians of scale
  >= 1, whose excess kurtosis is below 1e-9, so Gaussian for this purpose) give
  sum(x^2) / V ~ chi^2(n); two-sided tests use the P_FAIL / 2 quantiles, one-sided tests
  the P_FAIL quantile. Two empirical variances are compared by their ratio ~ F(n, n).
* Mean: |mean| <= z sqrt(V / n), z the normal's P_FAIL / 2 upper quantile (4.9).
* Coverage: the number of covering intervals is Binomial(n, p), p the exact coverage of the
  interval computed from the pmf of the summed noise; accepted within z binomial sds.

Noise vectors are drawn in one OpenDP call per member (its sampler is per call and draws
every entry independently): a vector of RUNS * DIMS zeros is RUNS runs of a DIMS-cell query.
"""

import hashlib
import math

import numpy as np
import polars as pl
import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from scipy import stats

from contracts.accuracy import Z95
from contracts.v1 import Column, DatasetContract, Level, PrivacyUnit, QuerySpec
from hub.queries.secure_combine import Aggregate, secure_cells, unmasked_sum
from node.privacy import engine, mechanisms, secure
from node.privacy.exceptions import CostCheckFailed

P_FAIL = 1e-6
Z = float(stats.norm.isf(P_FAIL / 2))
RUNS = 2000
DIMS = 10
RHO = 0.02
MASK_LENGTH = 50_000


def private_key(label: str) -> X25519PrivateKey:
    return X25519PrivateKey.from_private_bytes(hashlib.sha256(label.encode()).digest())


def roster(members: int, label: str = "k") -> dict[str, X25519PrivateKey]:
    return {f"node-{i:03d}": private_key(f"{label}-{i}") for i in range(members)}


def publics(keys: dict[str, X25519PrivateKey]) -> dict[str, X25519PublicKey]:
    return {node_id: key.public_key() for node_id, key in keys.items()}


def masked_all(
    vectors: dict[str, np.ndarray],
    keys: dict[str, X25519PrivateKey],
    *,
    context: str = "query-1|1",
    component: str = "count",
) -> dict[str, np.ndarray]:
    """Every member's masked vector (uint64), as the hub receives it."""
    peers = publics(keys)
    return {
        node_id: secure.masked(
            values,
            node_id=node_id,
            private=keys[node_id],
            peers=peers,
            context=context,
            component=component,
        )
        for node_id, values in vectors.items()
    }


def wrapped(total: int) -> int:
    """A Python integer read in Z / 2^64 as a signed 64-bit integer."""
    total %= 2**64
    return total - 2**64 if total >= 2**63 else total


def assert_uniform_bytes(values: np.ndarray) -> None:
    """Top and bottom byte of values in Z / 2^64 each uniform over 256 bins."""
    for byte in (values >> np.uint64(56), values & np.uint64(0xFF)):
        observed = np.bincount(byte.astype(np.int64), minlength=256)
        assert stats.chisquare(observed).pvalue > P_FAIL


def dg_pmf(scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Support and pmf of the discrete Gaussian N_Z(0, scale^2), truncated at 14 scales."""
    span = np.arange(-math.ceil(14 * scale) - 1, math.ceil(14 * scale) + 2)
    weights = np.exp(-(span * span) / (2 * scale * scale))
    return span, weights / weights.sum()


def dg_variance(scale: float) -> float:
    span, pmf = dg_pmf(scale)
    return float((span * span * pmf).sum())


def sum_pmf(scale: float, terms: int) -> tuple[np.ndarray, np.ndarray]:
    """Support and pmf of the sum of `terms` independent N_Z(0, scale^2)."""
    _, pmf = dg_pmf(scale)
    total = pmf
    for _ in range(terms - 1):
        total = np.convolve(total, pmf)
    half = (len(total) - 1) // 2
    return np.arange(-half, half + 1), total


def assert_variance(errors: np.ndarray, variance: float, *, one_sided: bool = False) -> None:
    """sum(x^2) / variance against chi^2(n); one-sided: only "not smaller"."""
    n = len(errors)
    statistic = float((errors.astype(np.float64) ** 2).sum() / variance)
    if one_sided:
        assert statistic >= stats.chi2.ppf(P_FAIL, n)
        return
    assert stats.chi2.ppf(P_FAIL / 2, n) <= statistic <= stats.chi2.isf(P_FAIL / 2, n)


def assert_mean_zero(errors: np.ndarray, variance: float) -> None:
    assert abs(float(errors.mean())) <= Z * math.sqrt(variance / len(errors))


def shares_of_noise(scale: float, members: int, length: int) -> list[np.ndarray]:
    return [secure.add_noise_share(np.zeros(length, dtype=np.int64), scale) for _ in range(members)]


def central_sigma(rho: float, l2: float) -> float:
    """The central scale without OpenDP's float nudge: what the privacy argument needs."""
    return l2 / math.sqrt(2 * rho)


# Masks


@pytest.mark.parametrize("members", [5, 20])
def test_masks_cancel_exactly_over_the_roster(members: int) -> None:
    keys = roster(members)
    rng = np.random.default_rng(members)
    # Large values of both signs, small ones and the edges; the plain sum still fits int64.
    limit = 2**63 // (members + 1)
    vectors = {}
    for node_id in keys:
        values = rng.integers(-limit, limit, size=257, dtype=np.int64)
        values[:6] = (0, -1, 1, limit - 1, -limit, -(2**31))
        values[6:20] = rng.integers(-1000, 1000, size=14)
        vectors[node_id] = values
    wire = masked_all(vectors, keys)
    plain = [sum(int(v[i]) for v in vectors.values()) for i in range(257)]
    assert unmasked_sum(list(wire.values())).tolist() == plain
    # Each masked vector differs from its values everywhere (they are hidden).
    for node_id, values in vectors.items():
        assert (wire[node_id] != values.view(np.uint64)).all()
    # On a strict subset the masks do not cancel: every entry is off.
    for left_out in (next(iter(keys)), sorted(keys)[members // 2], sorted(keys)[-1]):
        rest = [node_id for node_id in keys if node_id != left_out]
        partial = unmasked_sum([wire[node_id] for node_id in rest])
        subset = [wrapped(sum(int(vectors[n][i]) for n in rest)) for i in range(257)]
        assert (partial != np.asarray(subset, dtype=np.int64)).all()


def test_masks_cancel_with_wraparound() -> None:
    # Noisy integer vectors can sum past int64 on the way; Z / 2^64 gives back the sum.
    keys = roster(3)
    big = np.full(8, 2**62, dtype=np.int64)
    vectors = {"node-000": big, "node-001": big, "node-002": -big}
    assert unmasked_sum(list(masked_all(vectors, keys).values())).tolist() == [2**62] * 8


def test_one_masked_vector_is_uniform() -> None:
    keys = roster(3, "uniform")
    peers = publics(keys)
    # The middle member both adds (to node-002) and subtracts (from node-000) a mask.
    node_id = "node-001"
    zeros = np.zeros(MASK_LENGTH, dtype=np.int64)
    counts = np.random.default_rng(7).integers(0, 2_000, size=MASK_LENGTH, dtype=np.int64)
    masked_zeros = secure.masked(
        zeros, node_id=node_id, private=keys[node_id], peers=peers, context="q|1", component="count"
    )
    other = roster(3, "other")
    masked_counts = secure.masked(
        counts,
        node_id=node_id,
        private=other[node_id],
        peers=publics(other),
        context="q|1",
        component="count",
    )
    assert masked_zeros.dtype == np.uint64
    assert_uniform_bytes(masked_zeros)
    assert_uniform_bytes(masked_counts)
    # Indistinguishable from each other: two-sample KS on the top 53 bits as [0, 1) reals,
    # and a 2 x 256 contingency test on the bottom byte (where the counts live).
    shift = np.uint64(11)
    a = (masked_zeros >> shift).astype(np.float64) / 2.0**53
    b = (masked_counts >> shift).astype(np.float64) / 2.0**53
    assert stats.ks_2samp(a, b).pvalue > P_FAIL
    assert stats.kstest(a, "uniform").pvalue > P_FAIL
    low = [
        np.bincount((v & np.uint64(0xFF)).astype(np.int64), minlength=256)
        for v in (masked_zeros, masked_counts)
    ]
    assert stats.chi2_contingency(np.asarray(low)).pvalue > P_FAIL


def test_masks_are_bound_to_query_attempt_and_component() -> None:
    keys = roster(2, "context")
    a, b = "node-000", "node-001"
    public_b, public_a = keys[b].public_key(), keys[a].public_key()
    contexts = [("q1|1", "count"), ("q1|2", "count"), ("q2|1", "count"), ("q1|1", "sum")]
    seeds = []
    for context, component in contexts:
        seed = secure.pair_seed(
            keys[a], public_b, context=context, pair=(a, b), component=component
        )
        # Both ends derive the same seed, whichever way round they name the pair.
        assert seed == secure.pair_seed(
            keys[b], public_a, context=context, pair=(b, a), component=component
        )
        seeds.append(seed)
    assert len(set(seeds)) == len(seeds)
    masks = [secure.mask(seed, MASK_LENGTH) for seed in seeds]
    for i in range(len(masks)):
        for j in range(i + 1, len(masks)):
            assert not (masks[i] == masks[j]).any()
            # Unrelated: their difference is itself uniform.
            assert_uniform_bytes(masks[i] - masks[j])
    # Contributions of two attempts do not unmask each other.
    values = {a: np.arange(100, dtype=np.int64), b: np.arange(100, dtype=np.int64)}
    first = masked_all(values, keys, context="q1|1")
    second = masked_all(values, keys, context="q1|2")
    plain = 2 * np.arange(100, dtype=np.int64)
    assert (unmasked_sum([first[a], first[b]]) == plain).all()
    assert not (unmasked_sum([first[a], second[b]]) == plain).any()
    other_component = masked_all(values, keys, context="q1|1", component="sum")
    assert not (unmasked_sum([first[a], other_component[b]]) == plain).any()


# Accounting

RHOS = (0.001, 0.01, 0.02, 0.05, 0.1, 0.5, 2.0)
SENSITIVITIES = ((1.0, 1.0), (3.0, 3.0), (1025.0, 1025.0), (1028.0, 1026.0))


@pytest.mark.parametrize("rho", RHOS)
@pytest.mark.parametrize(("l1", "l2"), SENSITIVITIES)
def test_share_scale_costs_at_most_rho(rho: float, l1: float, l2: float) -> None:
    for dims in (1, 10, 500):
        central = secure.share_scale(rho=rho, honest=1, dims=dims, l1=l1, l2=l2)
        # One share is the central release (tau = 0), nudged as the engine nudges.
        expected = max(secure.MIN_SHARE_SCALE, central_sigma(rho, l2)) * mechanisms.SCALE_NUDGE
        assert central == pytest.approx(expected, rel=1e-12)
        if central_sigma(rho, l2) >= secure.MIN_SHARE_SCALE:
            assert central == pytest.approx(
                mechanisms.noise_scale(rho=rho, sensitivity=l2), rel=1e-12
            )
        for honest in (1, 2, 3, 5, 20, 50):
            scale = secure.share_scale(rho=rho, honest=honest, dims=dims, l1=l1, l2=l2)
            assert scale >= secure.MIN_SHARE_SCALE
            assert secure.ddg_rho(scale=scale, honest=honest, dims=dims, l1=l1, l2=l2) <= rho
            # Never less total noise than the central release.
            assert honest * scale**2 >= central_sigma(rho, l2) ** 2 * (1 - 1e-12)


def test_scales_below_one_half_are_refused() -> None:
    with pytest.raises(CostCheckFailed):
        secure.ddg_rho(scale=0.49, honest=2, dims=1, l1=1, l2=1)


@pytest.mark.parametrize("rho", RHOS)
@pytest.mark.parametrize(("l1", "l2"), SENSITIVITIES)
def test_noise_plan_survives_collusion(rho: float, l1: float, l2: float) -> None:
    central = central_sigma(rho, l2) ** 2
    for dims in (1, 10, 500):
        for members in (1, 2, 5, 20):
            for collusion in (0, 1, 2, 4, 30):
                plan = secure.noise_plan(
                    rho=rho, members=members, collusion=collusion, dims=dims, l1=l1, l2=l2
                )
                t = min(collusion, members - 1)
                assert t + 1 <= plan.adders <= members
                assert plan.scale >= secure.MIN_SHARE_SCALE
                # Whichever t adders side with the hub, the other shares alone cost <= rho.
                honest = plan.adders - t
                cost = secure.ddg_rho(scale=plan.scale, honest=honest, dims=dims, l1=l1, l2=l2)
                assert cost <= rho
                assert honest * plan.scale**2 >= central * (1 - 1e-9)
                assert plan.adders * plan.scale**2 >= central * (1 - 1e-9)


# Noise


@pytest.mark.parametrize("members", [5, 20])
def test_summed_shares_match_the_central_noise(members: int) -> None:
    plan = secure.noise_plan(rho=RHO, members=members, collusion=0, dims=DIMS, l1=1, l2=1)
    assert plan.adders == members
    sigma = mechanisms.noise_scale(rho=RHO, sensitivity=1)
    assert plan.adders * plan.scale**2 == pytest.approx(sigma**2, rel=1e-3)
    n = RUNS * DIMS
    total = np.sum(shares_of_noise(plan.scale, plan.adders, n), axis=0)
    central = np.asarray(
        mechanisms.release(
            kind="discrete_gaussian", scale=sigma, sensitivity=1, rho=RHO, values=[0] * n
        ),
        dtype=np.int64,
    )
    assert_variance(total, members * dg_variance(plan.scale))
    assert_variance(total, sigma**2)
    assert_variance(central, sigma**2)
    assert_mean_zero(total, sigma**2)
    assert_mean_zero(central, sigma**2)
    # The two empirical variances agree: their ratio ~ F(n, n) (known zero means).
    ratio = float((total.astype(np.float64) ** 2).sum() / (central.astype(np.float64) ** 2).sum())
    assert stats.f.ppf(P_FAIL / 2, n, n) <= ratio <= stats.f.isf(P_FAIL / 2, n, n)


@pytest.mark.parametrize("collusion", [1, 2])
def test_noise_left_by_colluders_is_central(collusion: int) -> None:
    members = 5
    plan = secure.noise_plan(rho=RHO, members=members, collusion=collusion, dims=DIMS, l1=1, l2=1)
    sigma = mechanisms.noise_scale(rho=RHO, sensitivity=1)
    n = RUNS * DIMS
    shares = shares_of_noise(plan.scale, plan.adders, n)
    # Worst case: the colluders are adders and the hub subtracts their shares.
    left = np.sum(shares[collusion:], axis=0)
    assert_variance(left, sigma**2, one_sided=True)
    assert_variance(left, (plan.adders - collusion) * dg_variance(plan.scale))
    assert_variance(np.sum(shares, axis=0), plan.adders * dg_variance(plan.scale))


# noisy_shares on a real dataset

LEVELS = tuple(f"g{i:03d}" for i in range(100))
ROWS = 5_000
UPPER = 10
MEMBERS = 5
SHARE_RUNS = 60


def contract() -> DatasetContract:
    return DatasetContract(
        name="secure",
        version=1,
        title="Secure aggregation",
        columns=(
            Column(name="g", type="categorical", levels=tuple(Level(code=g) for g in LEVELS)),
            Column(name="y", type="categorical", levels=(Level(code="yes"), Level(code="no"))),
            Column(name="v", type="integer", role="measure", lower=0, upper=UPPER),
        ),
        privacy=PrivacyUnit(max_contributions=1),
    )


def frame() -> pl.DataFrame:
    rng = np.random.default_rng(13)
    return pl.DataFrame(
        {
            "g": pl.Series(np.asarray(LEVELS)[rng.integers(0, len(LEVELS), ROWS)]).cast(
                pl.Enum(LEVELS)
            ),
            "y": pl.Series(np.where(rng.random(ROWS) < 0.3, "yes", "no")).cast(
                pl.Enum(["yes", "no"])
            ),
            "v": pl.Series(rng.integers(0, UPPER + 1, ROWS), dtype=pl.Int64),
        }
    )


def spec(**fields: object) -> QuerySpec:
    base: dict[str, object] = {
        "agreement_id": "a",
        "dataset": "secure",
        "group_by": ("g",),
        "rho": RHO,
    }
    base.update(fields)
    return QuerySpec(**base)  # type: ignore[arg-type]


SPECS = {
    "count": {"measure": "count"},
    "share": {"measure": "share", "column": "y", "value": "yes"},
    "sum": {"measure": "sum", "column": "v"},
}


@pytest.mark.parametrize("measure", list(SPECS))
def test_noisy_shares_add_up_to_the_planned_noise(measure: str) -> None:
    s = spec(**SPECS[measure])
    data = frame()
    keys = roster(MEMBERS, "dataset")
    ids = sorted(keys)
    exacts = {
        node_id: engine.measure_exact(
            data=data.filter(pl.int_range(pl.len()) % MEMBERS == rank).lazy(),
            contract=contract(),
            spec=s,
            rho=RHO,
        )
        for rank, node_id in enumerate(ids)
    }
    # A rank past the plan's adders adds no noise: the node's vectors before noise.
    plain = {
        node_id: secure.noisy_shares(
            exacts[node_id],
            keys=exacts[node_id].keys,
            contract=contract(),
            spec=s,
            rho=RHO,
            rank=MEMBERS,
            members=MEMBERS,
            collusion=0,
        )
        for node_id in ids
    }
    names = [share.name for share in plain[ids[0]]]
    assert names == (["count", "sum"] if measure == "sum" else ["count"])
    cells = len(LEVELS) * (2 if measure == "share" else 1)
    if measure == "sum":
        step = plain[ids[0]][1].granularity
        assert step == secure.sum_granularity(UPPER / 2)
        for node_id in ids:
            # Rounding to the public grid moves each node's cell by at most half a step.
            exact = np.asarray(exacts[node_id].values["sum"])
            assert np.abs(plain[node_id][1].values * step - exact).max() <= step / 2 + 1e-9
        pooled = sum(np.asarray(exacts[n].values["sum"]) for n in ids)
        rounded = sum(plain[n][1].values for n in ids) * step
        assert np.abs(rounded - pooled).max() <= MEMBERS * step / 2 + 1e-9
    errors: dict[str, list[np.ndarray]] = {name: [] for name in names}
    shares: list[secure.Share] = []
    for run in range(SHARE_RUNS):
        wire: dict[str, list[np.ndarray]] = {name: [] for name in names}
        for rank, node_id in enumerate(ids):
            shares = secure.noisy_shares(
                exacts[node_id],
                keys=exacts[node_id].keys,
                contract=contract(),
                spec=s,
                rho=RHO,
                rank=rank,
                members=MEMBERS,
                collusion=0,
            )
            for share in shares:
                wire[share.name].append(
                    secure.masked(
                        share.values,
                        node_id=node_id,
                        private=keys[node_id],
                        peers=publics(keys),
                        context=f"q|{run + 1}",
                        component=share.name,
                    )
                )
        for i, name in enumerate(names):
            total = unmasked_sum(wire[name])
            assert len(total) == cells
            errors[name].append(total - sum(plain[n][i].values for n in ids))
    for share in shares:
        plan = share.plan
        assert plan.adders == MEMBERS
        assert share.share_scale == plan.scale
        if measure != "sum":
            assert share.rho == RHO
        elif share.name == "count":
            assert share.rho == pytest.approx(RHO * engine.COUNT_SHARE)
        else:
            assert share.rho == pytest.approx(RHO * (1 - engine.COUNT_SHARE))
        expected = secure.noise_plan(
            rho=share.rho,
            members=MEMBERS,
            collusion=0,
            dims=cells,
            l1=share.sensitivity.l1,
            l2=share.sensitivity.l2,
        )
        assert plan == expected
        noise = np.concatenate(errors[share.name])
        variance = plan.adders * dg_variance(plan.scale)
        assert_variance(noise, variance)
        assert_mean_zero(noise, variance)


def test_secure_cells_cover_counts() -> None:
    exact = np.arange(1, DIMS + 1, dtype=np.int64) * 60
    plan = secure.noise_plan(rho=RHO, members=MEMBERS, collusion=0, dims=DIMS, l1=1, l2=1)
    noise = np.sum(shares_of_noise(plan.scale, plan.adders, RUNS * DIMS), axis=0)
    members = tuple(sorted(roster(MEMBERS)))
    variance = plan.adders * plan.scale**2
    keys = tuple((f"g{i}",) for i in range(DIMS))
    covered = 0
    for run in range(RUNS):
        agg = Aggregate(
            measure="count",
            keys=keys,
            inner=1,
            center=0.0,
            totals={"count": exact + noise[run * DIMS : (run + 1) * DIMS]},
            granularity={"count": 1.0},
            variance={"count": variance},
            members=members,
        )
        cells = secure_cells(agg, min_cell_size=0, max_ci_relative_width=None)
        assert all(c.status == "ok" for c in cells)
        covered += sum(
            c.ci95_low <= x <= c.ci95_high  # type: ignore[operator]
            for c, x in zip(cells, exact.tolist(), strict=True)
        )
    # Exact coverage of the normal interval for the integer-valued summed noise.
    span, pmf = sum_pmf(plan.scale, plan.adders)
    half = Z95 * math.sqrt(variance)
    p = float(pmf[np.abs(span) <= half].sum())
    assert 0.93 <= p <= 0.97
    n = RUNS * DIMS
    assert abs(covered / n - p) <= Z * math.sqrt(p * (1 - p) / n)
    assert 0.93 <= covered / n <= 0.97
