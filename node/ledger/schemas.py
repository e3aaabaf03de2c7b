"""Ledger outputs: budget lines and the outcome of reserving a query."""

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict


class BudgetLine(BaseModel):
    model_config = ConfigDict(frozen=True)

    agreement_id: str
    version: int
    rho_budget: float
    rho_spent: float
    rho_remaining: float
    queries: int


@dataclass(frozen=True)
class Reservation:
    """`charged`: new intent, budget charged; `stored`: release exists; `pending`: in flight."""

    outcome: Literal["charged", "stored", "pending"]
    release_jws: str | None = None
