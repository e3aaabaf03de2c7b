"""What nodes published about their mappings: per module version, per variable status."""

from datetime import datetime

from sqlalchemy import JSON, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from hub.db import Base
from runtime.db import UtcDateTime


class ModuleCoverageRow(Base):
    """One node's latest coverage of one module version (metadata only: no levels, no counts)."""

    __tablename__ = "module_coverage"

    node_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    module: Mapped[str] = mapped_column(String(63), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    # {variable: "mapped" | "derived" | "not_collected"}
    variables: Mapped[dict[str, str]] = mapped_column(JSON)
    published_at: Mapped[datetime] = mapped_column(UtcDateTime)
