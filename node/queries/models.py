"""Query ids this node accepted for secure aggregation (plain ones are the ledger's)."""

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from node.db import Base


class SecureQueryRow(Base):
    """A query id first accepted in a secure phase; never answered plainly (modes.py)."""

    __tablename__ = "secure_queries"

    query_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    first_seen: Mapped[str] = mapped_column(String(40))
