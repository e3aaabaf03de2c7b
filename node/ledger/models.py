"""Tables of the privacy budget ledger and of stored releases keyed by query id."""

from datetime import datetime
from decimal import Decimal

from sqlalchemy import Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from node.db import Base, ExactDecimal
from runtime.db import UtcDateTime


class BudgetRow(Base):
    """Spent zCDP budget of one agreement at this node; locked for every charge.

    Every rho here is an exact decimal (ExactDecimal), so totals equal the sum of charges.
    """

    __tablename__ = "budgets"

    agreement_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    rho_spent: Mapped[Decimal] = mapped_column(ExactDecimal())
    queries: Mapped[int] = mapped_column(Integer)


class ReleaseRow(Base):
    """A release intent, charged before noise is drawn; `release` is set exactly once."""

    __tablename__ = "releases"

    query_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    agreement_id: Mapped[str] = mapped_column(String(100))
    request_digest: Mapped[str] = mapped_column(String(64))
    rho: Mapped[Decimal] = mapped_column(ExactDecimal())
    created_at: Mapped[str] = mapped_column(String(40))
    release: Mapped[str | None] = mapped_column(Text, nullable=True)


class BudgetCharge(Base):
    """One charge: which version, when (for the period calendar), by whom and on what.

    Written in the same transaction as the release intent; `rho_spent` on BudgetRow is the
    lifetime sum of these (plus charges from before this table existed).
    """

    __tablename__ = "budget_charges"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    query_id: Mapped[str] = mapped_column(String(36), unique=True)
    agreement_id: Mapped[str] = mapped_column(String(100), index=True)
    version: Mapped[int] = mapped_column(Integer)
    rho: Mapped[Decimal] = mapped_column(ExactDecimal())
    # Naive UTC on SQLite, timestamptz on PostgreSQL: compared only with UTC bounds.
    charged_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    period: Mapped[str] = mapped_column(String(20))
    analyst: Mapped[str | None] = mapped_column(String(200), nullable=True)
    organisation: Mapped[str | None] = mapped_column(String(200), nullable=True)
    dataset: Mapped[str] = mapped_column(String(63))
    measure: Mapped[str] = mapped_column(String(20))
    column: Mapped[str | None] = mapped_column(String(63), nullable=True)
    group_by: Mapped[str] = mapped_column(Text)
