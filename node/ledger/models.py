"""Tables of the privacy budget ledger and of stored releases keyed by query id."""

from sqlalchemy import Float, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from node.db import Base


class BudgetRow(Base):
    """Spent zCDP budget of one agreement at this node; locked for every charge."""

    __tablename__ = "budgets"

    agreement_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    rho_spent: Mapped[float] = mapped_column(Float)
    queries: Mapped[int] = mapped_column(Integer)


class ReleaseRow(Base):
    """A release intent, charged before noise is drawn; `release` is set exactly once."""

    __tablename__ = "releases"

    query_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    agreement_id: Mapped[str] = mapped_column(String(100))
    request_digest: Mapped[str] = mapped_column(String(64))
    rho: Mapped[float] = mapped_column(Float)
    created_at: Mapped[str] = mapped_column(String(40))
    release: Mapped[str | None] = mapped_column(Text, nullable=True)
