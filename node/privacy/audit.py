"""A black-box privacy audit of the engine: distinguishing attacks on neighbouring datasets.

An (epsilon, delta)-DP mechanism M satisfies, for neighbouring datasets D, D' and every test
that guesses "D'" from an output, FPR + e^epsilon FNR >= 1 - delta and FNR + e^epsilon FPR
>= 1 - delta (FPR: guessing D' on D; FNR: guessing D on D'). So any test whose error rates
are bounded above gives a lower bound on the epsilon the mechanism really has:
epsilon_lo = ln((1 - delta - FPR_hi) / FNR_hi) (and the same with the roles swapped). If
epsilon_lo exceeds the epsilon a release states, the statement is false (Jagielski, Ullman
and Oprea 2020; Nasr et al. 2021; Tramèr et al. 2022).

The audit here treats the engine as a black box: it draws `trials` releases of one query on
D and on D' (D plus one privacy unit whose `max_contributions` rows all land in one cell or
bin at an extreme value: the worst case the sensitivity argument allows), reads one number
from each release (the attacker's statistic: the released value of the cell the unit
changes, or for sum and mean the likelihood-ratio combination of the released count and
centred sum, whose scales the release states), and thresholds it. Half of the trials choose
the threshold and its direction; the other half, never seen by that choice, estimate FPR and
FNR with Clopper-Pearson upper bounds at alpha / 2 each, so epsilon_lo is a valid lower bound
with probability >= 1 - alpha. The exact (un-noised) components of D and D' are measured
once by the engine's own polars pass (`measure_exact`); every trial draws fresh noise with
`release_exact` (mechanisms and all post-processing), which is the engine's output
distribution on that dataset.

`broken_...` builds the same releases from a deliberately broken engine, to show the audit
has power: the clamp removed (a value far above the bound goes in raw), or the noise scale
computed as if each unit had one row (sensitivity without `max_contributions`).
"""

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from contracts.v1 import Column, DatasetContract, Level, PrivacyUnit, QuerySpec
from node.privacy import engine
from node.privacy.schemas import ComputedRelease

MEASURES = ("count", "share", "sum", "mean", "quantile", "histogram")
ALPHA = 0.001
GROUPS = ("a", "b")
UPPER = 100
QUANTILE_CANDIDATES = (10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0)
HISTOGRAM_EDGES = (0.0, 25.0, 50.0, 75.0, 100.0)
# The planted unit's raw value when the clamp is removed: far above the bound.
FAR_ABOVE = 1_000_000


@dataclass(frozen=True)
class AuditResult:
    name: str
    trials: int
    epsilon_lo: float
    claimed_epsilon: float
    delta: float
    threshold: float
    false_positive: int
    false_negative: int

    @property
    def passed(self) -> bool:
        """No violation found: the lower bound does not exceed the stated epsilon."""
        return self.epsilon_lo <= self.claimed_epsilon


def contract(max_contributions: int) -> DatasetContract:
    return DatasetContract(
        name="audit",
        version=1,
        title="DP audit",
        columns=(
            Column(name="g", type="categorical", levels=tuple(Level(code=g) for g in GROUPS)),
            Column(name="y", type="categorical", levels=(Level(code="yes"), Level(code="no"))),
            Column(name="v", type="integer", role="measure", lower=0, upper=UPPER),
        ),
        privacy=PrivacyUnit(max_contributions=max_contributions),
    )


def neighbours(rows: int, k: int, *, value: int = UPPER) -> tuple[pl.DataFrame, pl.DataFrame]:
    """D (`rows` rows over two groups) and D' = D plus one unit of `k` rows, all in group a,
    answering `yes`, with value `value` (the upper bound: the extreme the bounds allow)."""
    schema: dict[str, pl.DataType] = {
        "g": pl.Enum(GROUPS),
        "y": pl.Enum(["yes", "no"]),
        "v": pl.Int64(),
    }
    base = pl.DataFrame(
        {
            "g": [GROUPS[i % 2] for i in range(rows)],
            "y": ["yes" if (i * 7) % 10 < 4 else "no" for i in range(rows)],
            "v": [(i * 37) % (UPPER + 1) for i in range(rows)],
        },
        schema=schema,
    )
    unit = pl.DataFrame({"g": ["a"] * k, "y": ["yes"] * k, "v": [value] * k}, schema=schema)
    return base, pl.concat([base, unit])


def spec_for(measure: str, rho: float) -> QuerySpec:
    fields: dict[str, object] = {
        "agreement_id": "audit",
        "dataset": "audit",
        "measure": measure,
        "group_by": ("g",),
        "rho": rho,
    }
    if measure == "share":
        fields.update(column="y", value="yes")
    elif measure in ("sum", "mean"):
        fields.update(column="v")
    elif measure == "quantile":
        fields.update(column="v", candidates=QUANTILE_CANDIDATES)
    elif measure == "histogram":
        fields.update(column="v", edges=HISTOGRAM_EDGES)
    return QuerySpec.model_validate(fields)


def statistic(measure: str) -> Callable[[ComputedRelease], float]:
    """What the attacker reads from a release: the number the planted unit moves most,
    per unit of noise. Cells are keyed group-first; the unit is in group a."""
    if measure in ("count", "histogram"):
        # Group a's last bin holds the value at the upper bound (histogram); count: cell a.
        index = len(HISTOGRAM_EDGES) - 2 if measure == "histogram" else 0
        return lambda r: float(r.cells[index].estimate or 0.0)
    if measure == "share":
        return lambda r: float(r.cells[0].numerator or 0.0)
    if measure == "quantile":
        # Group a's bins; the value at the bound lands above the last candidate.
        return lambda r: float((r.cells[0].bins or ())[len(QUANTILE_CANDIDATES)])

    def likelihood_ratio(r: ComputedRelease) -> float:
        # The unit adds k rows of value U: count +k, centred sum +k (U - m). The optimal
        # test for two Gaussian coordinates weighs each shift by 1 / variance; the shifts'
        # common factor k does not change the test.
        count, total = r.components
        cell = r.cells[0]
        center = UPPER / 2
        centred = (cell.numerator or 0.0) - center * (cell.denominator or 0.0)
        return (cell.denominator or 0.0) / count.scale**2 + (
            (UPPER - center) * centred / total.scale**2
        )

    return likelihood_ratio


def clopper_pearson_upper(errors: int, trials: int, alpha: float) -> float:
    """The one-sided (1 - alpha) Clopper-Pearson upper bound on a binomial proportion: the p
    with P(Binomial(trials, p) <= errors) = alpha (bisection on the exact binomial cdf)."""
    if errors >= trials:
        return 1.0
    if errors == 0:
        return 1.0 - math.pow(alpha, 1.0 / trials)

    def cdf(p: float) -> float:
        log_p, log_q = math.log(p), math.log1p(-p)
        terms = [
            math.lgamma(trials + 1)
            - math.lgamma(i + 1)
            - math.lgamma(trials - i + 1)
            + i * log_p
            + (trials - i) * log_q
            for i in range(errors + 1)
        ]
        top = max(terms)
        return math.exp(top) * sum(math.exp(t - top) for t in terms)

    low, high = errors / trials, 1.0
    for _ in range(60):
        middle = (low + high) / 2
        if cdf(middle) > alpha:
            low = middle
        else:
            high = middle
    return high


def epsilon_bound(fp_hi: float, fn_hi: float, delta: float) -> float:
    """The largest epsilon lower bound the two (epsilon, delta) inequalities give."""
    best = 0.0
    for a, b in ((fp_hi, fn_hi), (fn_hi, fp_hi)):
        if b > 0 and 1 - delta - a > b:
            best = max(best, math.log((1 - delta - a) / b))
    return best


def _rates(on_d: np.ndarray, on_d1: np.ndarray, threshold: float, above: bool) -> tuple[int, int]:
    """(false positives on D, false negatives on D') of "guess D' when above/below t"."""
    if above:
        return int((on_d >= threshold).sum()), int((on_d1 < threshold).sum())
    return int((on_d <= threshold).sum()), int((on_d1 > threshold).sum())


def _choose_threshold(on_d: np.ndarray, on_d1: np.ndarray, delta: float) -> tuple[float, bool]:
    """The threshold and direction with the best bound on this (selection) half, judged with
    the same Clopper-Pearson bounds so that rare-tail thresholds are not over-trusted."""
    pooled = np.concatenate([on_d, on_d1])
    candidates = np.unique(np.quantile(pooled, np.linspace(0.0005, 0.9995, 400)))
    best = (-1.0, float(candidates[0]), True)
    n = len(on_d)
    for threshold in candidates:
        for above in (True, False):
            fp, fn = _rates(on_d, on_d1, float(threshold), above)
            # A cheap normal-approximation upper bound for ranking (exact CP on the winner).
            fp_hi = min(1.0, (fp + 3.1 * math.sqrt(fp + 1)) / n)
            fn_hi = min(1.0, (fn + 3.1 * math.sqrt(fn + 1)) / n)
            score = epsilon_bound(fp_hi, fn_hi, delta)
            if score > best[0]:
                best = (score, float(threshold), above)
    return best[1], best[2]


def distinguish(
    name: str,
    on_d: Sequence[float],
    on_d1: Sequence[float],
    *,
    claimed_epsilon: float,
    delta: float,
    alpha: float = ALPHA,
) -> AuditResult:
    """epsilon_lo from the attacker's statistics on D and D' (equal numbers of trials)."""
    d, d1 = np.asarray(on_d, dtype=np.float64), np.asarray(on_d1, dtype=np.float64)
    half = min(len(d), len(d1)) // 2
    threshold, above = _choose_threshold(d[:half], d1[:half], delta)
    fp, fn = _rates(d[half : 2 * half], d1[half : 2 * half], threshold, above)
    fp_hi = clopper_pearson_upper(fp, half, alpha / 2)
    fn_hi = clopper_pearson_upper(fn, half, alpha / 2)
    return AuditResult(
        name=name,
        trials=2 * half,
        epsilon_lo=epsilon_bound(fp_hi, fn_hi, delta),
        claimed_epsilon=claimed_epsilon,
        delta=delta,
        threshold=threshold,
        false_positive=fp,
        false_negative=fn,
    )


def _draw(
    exact: engine.Exact, read: Callable[[ComputedRelease], float], trials: int
) -> list[float]:
    return [
        read(
            engine.release_exact(exact, min_cell_size=0, max_ci_relative_width=None, suppress=False)
        )
        for _ in range(trials)
    ]


def audit_measure(
    measure: str, *, trials: int, rho: float, rows: int = 200, k: int = 4, alpha: float = ALPHA
) -> AuditResult:
    """Audit the real engine on one measure (`trials` releases on each of D and D')."""
    base, plus = neighbours(rows, k)
    c, s = contract(k), spec_for(measure, rho)
    exact_d = engine.measure_exact(data=base.lazy(), contract=c, spec=s, rho=rho)
    exact_d1 = engine.measure_exact(data=plus.lazy(), contract=c, spec=s, rho=rho)
    return _audit(measure, exact_d, exact_d1, trials=trials, alpha=alpha)


def _audit(
    name: str, exact_d: engine.Exact, exact_d1: engine.Exact, *, trials: int, alpha: float
) -> AuditResult:
    read = statistic(exact_d.spec.measure)
    stated = engine.release_exact(
        exact_d, min_cell_size=0, max_ci_relative_width=None, suppress=False
    )
    assert stated.epsilon is not None
    assert stated.delta is not None
    return distinguish(
        name,
        _draw(exact_d, read, trials),
        _draw(exact_d1, read, trials),
        claimed_epsilon=stated.epsilon,
        delta=stated.delta,
        alpha=alpha,
    )


def broken_without_clamp(
    measure: str, *, trials: int, rho: float, rows: int = 200, k: int = 4, alpha: float = ALPHA
) -> AuditResult:
    """The engine with its clamp removed: the planted unit's value FAR_ABOVE the bound goes
    into the sum raw, so its shift is far beyond the sensitivity the noise is scaled to."""
    base, plus = neighbours(rows, k, value=FAR_ABOVE)
    c, s = contract(k), spec_for(measure, rho)
    exact_d = _unclamped(base, c, s, rho)
    exact_d1 = _unclamped(plus, c, s, rho)
    return _audit(f"broken-clamp-{measure}", exact_d, exact_d1, trials=trials, alpha=alpha)


def _unclamped(data: pl.DataFrame, c: DatasetContract, s: QuerySpec, rho: float) -> engine.Exact:
    plan = engine._plan(c, s, rho)
    values = engine._aggregate(data.lazy(), c, s, plan, clamp=False)
    return engine.Exact(s, plan, engine.cell_keys(c, s), values)


def broken_sensitivity(
    measure: str, *, trials: int, rho: float, rows: int = 200, k: int = 8, alpha: float = ALPHA
) -> AuditResult:
    """The engine scaling its noise as if each unit had one row: sensitivity without
    max_contributions = k, so the noise is k times too small for a unit of k rows."""
    base, plus = neighbours(rows, k)
    c, s = contract(k), spec_for(measure, rho)
    exact_d = engine.measure_exact(data=base.lazy(), contract=c, spec=s, rho=rho)
    exact_d1 = engine.measure_exact(data=plus.lazy(), contract=c, spec=s, rho=rho)
    plan = exact_d.plan
    wrong = dataclasses.replace(
        plan,
        components=tuple(
            dataclasses.replace(comp, sensitivity=comp.sensitivity / k) for comp in plan.components
        ),
    )
    return _audit(
        f"broken-sensitivity-{measure}",
        dataclasses.replace(exact_d, plan=wrong),
        dataclasses.replace(exact_d1, plan=wrong),
        trials=trials,
        alpha=alpha,
    )
