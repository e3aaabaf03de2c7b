"""The interval width the builder predicts before a query runs matches the noise nodes add."""

import math

import pytest

from contracts.accuracy import Z95, gaussian_sd, predicted_half_width


def test_a_count_is_predicted_from_its_noise_alone() -> None:
    # rho = Delta^2 / (2 sigma^2): at rho 0.5 and one row per person, sigma is 1.
    assert gaussian_sd(1.0, 0.5) == pytest.approx(1.0)
    one = predicted_half_width(measure="count", rho=0.5, nodes=1)
    assert one == pytest.approx(Z95)
    # Noise variances add over nodes; a quarter of the cost doubles the width.
    four = predicted_half_width(measure="count", rho=0.5, nodes=4)
    assert four == pytest.approx(2 * Z95)
    assert predicted_half_width(measure="count", rho=0.125, nodes=1) == pytest.approx(2 * Z95)


def test_ratios_are_given_for_a_group_and_quantiles_are_not_guessed() -> None:
    share = predicted_half_width(measure="share", rho=0.5, nodes=1, group_size=100)
    assert share == pytest.approx(Z95 * math.sqrt(0.5) / 100)
    mean = predicted_half_width(measure="mean", rho=0.5, nodes=1, bounds=(1, 5), group_size=100)
    assert mean is not None
    assert 0 < mean < 1
    assert predicted_half_width(measure="mean", rho=0.5, nodes=1) is None  # no bounds known
    assert predicted_half_width(measure="quantile", rho=0.5, nodes=1, bounds=(1, 5)) is None
    assert predicted_half_width(measure="count", rho=0.0, nodes=1) is None
