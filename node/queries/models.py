"""The mode each query id was first accepted in: a plain release or secure aggregation."""

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from node.db import Base


class QueryModeRow(Base):
    """One row per query id this node accepted; its mode never changes (node/queries/modes.py)."""

    __tablename__ = "query_modes"

    query_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    mode: Mapped[str] = mapped_column(String(10))
    first_seen: Mapped[str] = mapped_column(String(40))
