"""Ledger outputs: budget lines, charges, and the outcome of reserving a query."""

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict

from contracts.budget import Amount


class BudgetLine(BaseModel):
    """One agreement's budget in the current period, under the newest version signed here.

    Amounts are exact decimals (JSON: decimal strings such as "0.37"), never float sums.
    """

    model_config = ConfigDict(frozen=True)

    agreement_id: str
    version: int
    rho_budget: Amount
    rho_spent: Amount
    rho_remaining: Amount
    queries: int
    budget_period: str = "validity"
    period: str = "validity"
    period_start: datetime | None = None
    period_end: datetime | None = None
    rho_spent_all_time: Amount = Decimal(0)
    status: str = "active"


class ChargeRead(BaseModel):
    """What one charge was spent on and by whom (`hub` when the request named nobody)."""

    model_config = ConfigDict(frozen=True)

    query_id: str
    version: int
    rho: Amount
    charged_at: datetime
    period: str
    requested_by: str
    organisation: str | None
    dataset: str
    measure: str
    column: str | None
    group_by: tuple[str, ...]


class SpendBy(BaseModel):
    model_config = ConfigDict(frozen=True)

    key: str
    rho: Amount
    queries: int


class BudgetDetail(BaseModel):
    """A steward's view of one agreement's budget: period, by whom, per version, per charge."""

    model_config = ConfigDict(frozen=True)

    line: BudgetLine
    by_organisation: tuple[SpendBy, ...]
    by_version: tuple[SpendBy, ...]
    by_period: tuple[SpendBy, ...]
    charges: tuple[ChargeRead, ...]


@dataclass(frozen=True)
class ChargeInfo:
    """Who asks and what, recorded with the charge (ids and column names only)."""

    version: int
    dataset: str
    measure: str
    column: str | None = None
    group_by: tuple[str, ...] = ()
    analyst: str | None = None
    organisation: str | None = None


@dataclass(frozen=True)
class Reservation:
    """`charged`: new intent, budget charged; `stored`: release exists; `pending`: in flight."""

    outcome: Literal["charged", "stored", "pending"]
    release_jws: str | None = None
