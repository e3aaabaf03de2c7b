"""Change since an earlier round, with a 95% interval, per country and breakdown (pure).

Rounds release independent noise, so the variance of a difference is the sum of the two
variances; each estimate's standard error is read back from its 95% interval (half-width /
1.96; the mean half-width where an interval is asymmetric, as a clipped share's can be).
A change is distinguishable from noise when its 95% interval excludes zero.
"""

import math
from collections.abc import Iterable

from hub.assessments.schemas import Change, ResultValue, RoundResults

Z95 = 1.959963984540054


def standard_error(value: ResultValue) -> float | None:
    if value.ci95_low is None or value.ci95_high is None:
        return None
    return (value.ci95_high - value.ci95_low) / (2 * Z95)


def change_of(current: ResultValue | None, previous: ResultValue | None) -> Change | None:
    base = current or previous
    if base is None:
        return None
    usable = [
        v
        for v in (current, previous)
        if v is not None and v.status == "ok" and v.estimate is not None
    ]
    now = current.estimate if current is not None and current in usable else None
    then = previous.estimate if previous is not None and previous in usable else None
    delta = low = high = None
    distinguishable = None
    if now is not None and then is not None and current is not None and previous is not None:
        se_now, se_then = standard_error(current), standard_error(previous)
        delta = now - then
        if se_now is not None and se_then is not None:
            half = Z95 * math.sqrt(se_now**2 + se_then**2)
            low, high = delta - half, delta + half
            distinguishable = low > 0 or high < 0
    return Change(
        indicator_id=base.indicator_id,
        country=base.country,
        breakdown=base.breakdown,
        levels=base.levels,
        current=now,
        previous=then,
        change=delta,
        change_ci95_low=low,
        change_ci95_high=high,
        distinguishable=distinguishable,
    )


def _index(values: Iterable[ResultValue]) -> dict[tuple[object, ...], ResultValue]:
    return {(v.indicator_id, v.country, v.breakdown, v.levels): v for v in values}


def compare(current: RoundResults, previous: RoundResults | None) -> tuple[Change, ...]:
    """Every estimate of `current` against the same cell of `previous` (if any)."""
    now = _index(current.values)
    then = _index(previous.values) if previous is not None else {}
    changes = [change_of(value, then.get(key)) for key, value in now.items()]
    return tuple(c for c in changes if c is not None)
