"""A black-box privacy audit of the real engine, in CI (node/privacy/audit.py).

For every measure, 2,000 releases on each of two neighbouring datasets (the second has one
more unit of max_contributions rows at the upper bound) feed a threshold attack; its error
rates, bounded by Clopper-Pearson at alpha = 0.001 on trials the threshold never saw, give a
lower bound on the epsilon the engine really has. It must not exceed the epsilon the release
states (at delta = 1e-7). The claims are audited at rho = 0.05 (epsilon 1.62), well inside
what 1,000 evaluation trials can refute (about ln(1000 / 4) = 5.5).

Why these thresholds cannot flake: a correct engine at rho = 0.05 shifts a unit of noise by
sqrt(2 rho) = 0.32 sd; the best test then has FPR + e^0.45 FNR >= 1 (its real epsilon at
the error rates 1,000 trials can see is below 0.5), so a bound above 1.62 needs both
Clopper-Pearson bounds to fail by factors far outside alpha (probability far below 1e-9).
The broken engines shift by far more than the noise (the clamp: a value 10,000 times the
bound; the sensitivity: noise 8 times too small for a unit of 8 rows): their bounds sit at
about 4.9 and 3.0 here, and falling below 1.62 needs the same kind of miracle. The whole
file takes about 15 s of one core.

The larger run is `python bench/dp_audit.py` (20,000 trials per dataset, in `make bench`).
"""

import pytest

from node.privacy import audit

TRIALS = 2000
RHO = 0.05


@pytest.mark.parametrize("measure", audit.MEASURES)
def test_no_release_is_more_distinguishable_than_it_states(measure: str) -> None:
    result = audit.audit_measure(measure, trials=TRIALS, rho=RHO)
    assert result.claimed_epsilon == pytest.approx(1.619, abs=0.01)
    assert result.passed, result


@pytest.mark.parametrize(
    "broken",
    [
        lambda: audit.broken_without_clamp("sum", trials=TRIALS, rho=RHO),
        lambda: audit.broken_without_clamp("mean", trials=TRIALS, rho=RHO),
        lambda: audit.broken_sensitivity("count", trials=TRIALS, rho=RHO),
        lambda: audit.broken_sensitivity("quantile", trials=TRIALS, rho=RHO),
    ],
    ids=["clamp-sum", "clamp-mean", "sensitivity-count", "sensitivity-quantile"],
)
def test_the_audit_flags_a_broken_engine(broken: object) -> None:
    result = broken()  # type: ignore[operator]
    assert not result.passed, result
    assert result.epsilon_lo > result.claimed_epsilon + 0.5


def test_clopper_pearson_bounds() -> None:
    # Reference values (scipy.stats.beta.ppf(1 - a, k + 1, n - k)).
    assert audit.clopper_pearson_upper(0, 1000, 0.0005) == pytest.approx(0.007572, rel=1e-3)
    assert audit.clopper_pearson_upper(10, 1000, 0.0005) == pytest.approx(0.025063, rel=1e-3)
    assert audit.clopper_pearson_upper(1000, 1000, 0.0005) == 1.0


def test_the_bound_of_a_perfect_attack_is_what_the_trials_allow() -> None:
    result = audit.distinguish(
        "perfect", [0.0] * 2000, [1.0] * 2000, claimed_epsilon=1.0, delta=1e-7
    )
    assert (result.false_positive, result.false_negative) == (0, 0)
    assert result.epsilon_lo == pytest.approx(4.8757, abs=1e-3)
    blind = audit.distinguish("blind", [0.0] * 2000, [0.0] * 2000, claimed_epsilon=1.0, delta=1e-7)
    assert blind.epsilon_lo == 0.0
