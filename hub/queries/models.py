"""Stored queries: spec, analyst, combined result and per-node tasks with verified releases.

Only releases (already DP) and metadata are stored here, never node data.
"""

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from hub.db import Base
from runtime.db import UtcDateTime


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
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    deadline: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    completed_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    # What combining needs from the agreement version: min_cell_size, max_ci_relative_width,
    # contract_version. Kept with the query so late arrivals combine under the same rules.
    rules: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)


class QueryNodeRow(Base):
    """One node's task for one query: pending until answered, refused, failed or timed out."""

    __tablename__ = "query_nodes"
    __table_args__ = (UniqueConstraint("query_id", "node_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    query_id: Mapped[str] = mapped_column(ForeignKey("queries.query_id"), index=True)
    node_id: Mapped[str] = mapped_column(String(100), index=True)
    outcome: Mapped[str] = mapped_column(String(20))
    error_code: Mapped[str | None] = mapped_column(String(100), nullable=True)
    request_jws: Mapped[str] = mapped_column(Text)
    release_jws: Mapped[str | None] = mapped_column(Text, nullable=True)
    country: Mapped[str | None] = mapped_column(String(3), nullable=True)
    mode: Mapped[str] = mapped_column(String(10), default="push")
    message: Mapped[str | None] = mapped_column(String(300), nullable=True)
    # The verified release's payload, so progress is recombined without re-verifying.
    release: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    # Last time the task left the hub (a push attempt or a pull hand-out); None: never sent.
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    answered_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
