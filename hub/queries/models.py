"""Stored queries: spec, analyst, combined result and per-node outcomes with verified releases.

Only releases (already DP) and metadata are stored here, never node data.
"""

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from hub.db import Base


class QueryRow(Base):
    __tablename__ = "queries"

    query_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    analyst: Mapped[str] = mapped_column(String(200))
    organisation: Mapped[str] = mapped_column(String(200), index=True)
    agreement_id: Mapped[str] = mapped_column(String(100))
    agreement_version: Mapped[int] = mapped_column(Integer)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(20))
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class QueryNodeRow(Base):
    __tablename__ = "query_nodes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    query_id: Mapped[str] = mapped_column(ForeignKey("queries.query_id"), index=True)
    node_id: Mapped[str] = mapped_column(String(100))
    outcome: Mapped[str] = mapped_column(String(20))
    error_code: Mapped[str | None] = mapped_column(String(100), nullable=True)
    request_jws: Mapped[str] = mapped_column(Text)
    release_jws: Mapped[str | None] = mapped_column(Text, nullable=True)
