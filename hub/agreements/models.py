"""Agreement versions (terms + digest), their signatures, and status changes by each party."""

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from hub.db import Base
from runtime.db import UtcDateTime


class AgreementVersion(Base):
    __tablename__ = "agreement_versions"
    __table_args__ = (UniqueConstraint("agreement_id", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    agreement_id: Mapped[str] = mapped_column(String(100), index=True)
    version: Mapped[int] = mapped_column(Integer)
    terms: Mapped[dict[str, Any]] = mapped_column(JSON)
    digest: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    # draft: editable, unsigned, invisible to analysts; proposed: the hub signed this text.
    state: Mapped[str] = mapped_column(String(20), default="proposed")
    created_by: Mapped[str] = mapped_column(String(200), default="")


class AgreementSignatureRow(Base):
    __tablename__ = "agreement_signatures"
    __table_args__ = (UniqueConstraint("agreement_id", "version", "signer"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    agreement_id: Mapped[str] = mapped_column(String(100), index=True)
    version: Mapped[int] = mapped_column(Integer)
    signer: Mapped[str] = mapped_column(String(100))
    kid: Mapped[str] = mapped_column(String(100))
    jws: Mapped[str] = mapped_column(Text)
    signed_at: Mapped[datetime] = mapped_column(UtcDateTime)


class AgreementStatusRow(Base):
    """A party's suspension, resumption or revocation: the secretariat's at the hub, or a
    node's, received as a notice the node signed (kept verbatim in `jws`)."""

    __tablename__ = "agreement_status_changes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    agreement_id: Mapped[str] = mapped_column(String(100), index=True)
    party: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(20))
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    reason: Mapped[str] = mapped_column(String(500), default="")
    actor: Mapped[str] = mapped_column(String(200))
    jws: Mapped[str | None] = mapped_column(Text, nullable=True)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime)
