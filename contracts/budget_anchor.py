"""What a privacy spend means for one person: rho next to (epsilon, delta) and a plain scale.

Node pages, hub pages, the printable MoU and the command line all explain a budget with
these numbers and this one wording, so a steward, a secretariat officer and a ministry read
the same thing. Two readings of one rho (zero-concentrated DP):

- (epsilon, delta): the standard conversion rho-zCDP => (rho + 2 sqrt(rho ln(1/delta)),
  delta)-DP (Bun & Steinke 2016, Prop. 1.3), at delta = 1e-6. It holds for every measure.
- The plain scale: the Gaussian noise Sauti adds (counts, shares, sums, means; composed over
  every answer) is mu-Gaussian DP with mu = sqrt(2 rho) (Dong, Roth & Su 2022), so the best
  possible test of "is this person's record in the data?", with even odds beforehand, is
  right with probability at most Phi(mu / 2). 50% is a blind guess. Quantiles and histograms
  charged as rho = epsilon^2 / 2 are covered by the (epsilon, delta) reading; the scale is
  the plain-language anchor for them, not a proof.
"""

import math
from dataclasses import dataclass
from decimal import Decimal
from typing import Final, Literal

from contracts import budget

DELTA: Final = 1e-6
Scale = Literal["very_little", "little", "moderate", "a_lot", "very_much"]
# Upper rho of each band (inclusive); above the last, "very_much".
_BANDS: Final[tuple[tuple[float, Scale], ...]] = (
    (0.05, "very_little"),
    (0.25, "little"),
    (1.0, "moderate"),
    (4.0, "a_lot"),
)
# English wording; each side's pages carry the same sentences in their message catalogues.
SCALE_TEXT: Final[dict[Scale, str]] = {
    "very_little": "very little can be learned about any one person",
    "little": "little can be learned about any one person",
    "moderate": "a moderate amount can be learned about one person",
    "a_lot": "a lot can be learned about one person",
    "very_much": "very much can be learned about one person",
}
ANCHOR_TEXT: Final = (
    "At ρ = %(rho)s, which is about (ε = %(epsilon)s, δ = 10⁻⁶), someone who knows everything"
    " else and tries to tell whether one person's answers are in the data is right at most"
    " %(accuracy)s%% of the time, where 50%% is a blind guess: %(scale)s."
)


@dataclass(frozen=True)
class Anchor:
    rho: float
    epsilon: float
    delta: float
    # Percent, 50 to 100: the best attacker's chance of telling whether one person is in.
    accuracy: float
    scale: Scale


def epsilon(rho: float, *, delta: float = DELTA) -> float:
    """The epsilon of (epsilon, delta)-DP implied by rho-zCDP."""
    if rho <= 0:
        return 0.0
    return rho + 2 * math.sqrt(rho * math.log(1 / delta))


def guess_accuracy(rho: float) -> float:
    """The best chance (0.5 to 1) of telling whether one person's record is in, at `rho`."""
    if rho <= 0:
        return 0.5
    mu = math.sqrt(2 * rho)
    return 0.5 * math.erfc(-(mu / 2) / math.sqrt(2))


def scale(rho: float) -> Scale:
    for upper, band in _BANDS:
        if rho <= upper:
            return band
    return "very_much"


def anchor(rho: float | Decimal) -> Anchor:
    value = float(rho)
    return Anchor(
        rho=value,
        epsilon=epsilon(value),
        delta=DELTA,
        accuracy=round(100 * guess_accuracy(value), 1),
        scale=scale(value),
    )


def anchor_text(rho: float | Decimal) -> str:
    """The anchor sentence in English (MoU document, command line)."""
    a = anchor(rho)
    return ANCHOR_TEXT % {
        "rho": budget.figure(budget.rho(rho)),
        "epsilon": f"{a.epsilon:.2f}",
        "accuracy": f"{a.accuracy:.1f}",
        "scale": SCALE_TEXT[a.scale],
    }
