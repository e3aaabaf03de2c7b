"""Exact privacy-budget arithmetic: rho as decimals, never as sums of doubles.

Costs travel as JSON numbers in signed messages (RFC 8785 serialises IEEE doubles), so
they arrive as floats. A float is turned into the decimal an analyst or steward wrote — the
shortest one that reads back as the same double (`repr`) — and everything after that (ledger
totals, what is left, the hub's view, exports, reconciliation) is decimal arithmetic that
either is exact or raises. 37 charges of 0.01 then sum to 0.37, not 0.37000000000000016.
"""

from collections.abc import Iterable
from decimal import (
    Context,
    Decimal,
    DivisionByZero,
    Inexact,
    InvalidOperation,
    Overflow,
    Rounded,
    Subnormal,
    Underflow,
)
from typing import Annotated, Final

from pydantic import PlainSerializer

from contracts.errors import RhoNotFinite

# Wide enough for any sum of doubles' shortest decimals (exponents 1e-324 to 1e308, 17
# digits each): sums never round, and one that would raises `Inexact` instead.
EXACT: Final = Context(
    prec=1000,
    Emax=999_999,
    Emin=-999_999,
    traps=[InvalidOperation, DivisionByZero, Overflow, Inexact, Rounded, Subnormal, Underflow],
)
ZERO: Final = Decimal(0)


def rho(value: float | int | str | Decimal) -> Decimal:
    """The exact decimal for a cost: a float's shortest round-trip decimal, else as written."""
    if isinstance(value, bool):
        raise RhoNotFinite("a cost is a number, not a truth value")
    number = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    if not number.is_finite():
        raise RhoNotFinite("a cost must be a finite number")
    return number


def add(*values: Decimal) -> Decimal:
    """The exact sum (raises rather than round)."""
    total = ZERO
    for value in values:
        total = EXACT.add(total, value)
    return total


def total(values: Iterable[float | int | str | Decimal]) -> Decimal:
    """The exact sum of costs given as floats (shortest decimals) or decimals."""
    return add(*(rho(v) for v in values))


def remaining(budget: float | Decimal, spent: Decimal) -> Decimal:
    """What is left of `budget` after `spent`, never below zero."""
    return max(ZERO, EXACT.subtract(rho(budget), spent))


def covers(*, budget: float | Decimal, spent: Decimal, cost: float | Decimal) -> bool:
    """Is spent + cost <= budget, exactly (a budget filled to the last digit still covers)?"""
    return add(spent, rho(cost)) <= rho(budget)


def text(value: Decimal) -> str:
    """Plain decimal notation without trailing zeros or exponent: 0.37, 10, 0.0000001."""
    if value == 0:
        return "0"
    return format(value.normalize(EXACT), "f")


# Every page and command shows a budget amount with at least this many decimals, and never
# rounds it (a page must never show less spent than was): 0.45 reads "0.450" everywhere.
FIGURE_DECIMALS: Final = 3


def figure(value: Decimal) -> str:
    """A budget amount as pages and commands show it: exact, at least FIGURE_DECIMALS decimals."""
    plain = text(value)
    whole, _, decimals = plain.partition(".")
    return f"{whole}.{decimals.ljust(FIGURE_DECIMALS, '0')}"


# A budget amount in pydantic models: an exact decimal, in JSON a plain decimal string ("0.37",
# "5", "0.0000001"), which parses back to the same decimal and never through a double.
Amount = Annotated[Decimal, PlainSerializer(text, return_type=str, when_used="json")]
