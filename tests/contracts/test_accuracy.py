import numpy as np

from contracts import accuracy


def test_share_interval_covers_the_true_share_about_95_percent() -> None:
    """Simulate the documented noise structure and check the delta-method coverage."""
    rng = np.random.default_rng(7)
    sigma, match, other, trials = 4.0, 60, 140, 4000
    true_p = match / (match + other)
    noisy_match = match + rng.normal(0, sigma, trials)
    noisy_other = other + rng.normal(0, sigma, trials)
    covered = 0
    for m, o in zip(noisy_match, noisy_other, strict=True):
        low, high = accuracy.share_interval(m, m + o, sigma**2)
        covered += low <= true_p <= high
    assert 0.93 <= covered / trials <= 0.97


def test_suppression_rules() -> None:
    common = {"estimate": 50.0, "ci95_low": 40.0, "ci95_high": 60.0}
    assert (
        accuracy.suppression_reason(
            cell_size=5, min_cell_size=10, max_ci_relative_width=None, **common
        )
        == "below_min_cell_size"
    )
    assert (
        accuracy.suppression_reason(
            cell_size=0, min_cell_size=0, max_ci_relative_width=None, **common
        )
        == "below_min_cell_size"
    )
    assert (
        accuracy.suppression_reason(
            cell_size=50, min_cell_size=10, max_ci_relative_width=0.1, **common
        )
        == "interval_too_wide"
    )
    assert (
        accuracy.suppression_reason(
            cell_size=50, min_cell_size=10, max_ci_relative_width=0.5, **common
        )
        is None
    )
