"""Audit tables: the entries, a one-row head that writers lock, and nodes' signed checkpoints."""

from sqlalchemy import Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from hub.db import Base
from runtime.audit_log import EntryColumns, HeadColumns


class AuditRow(EntryColumns, Base):
    """One entry of this side's chain (columns: `runtime.audit_log.EntryColumns`)."""

    __tablename__ = "audit_log"


class AuditHead(HeadColumns, Base):
    """The chain's tip, one row (columns: `runtime.audit_log.HeadColumns`)."""

    __tablename__ = "audit_head"


class CheckpointRow(Base):
    """A node's signed chain head as received; the JWS is kept so auditors can re-verify it."""

    __tablename__ = "audit_checkpoints"
    __table_args__ = (UniqueConstraint("node_id", "seq"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    node_id: Mapped[str] = mapped_column(String(100), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    hash: Mapped[str] = mapped_column(String(64))
    signed_at: Mapped[str] = mapped_column(String(40))
    received_at: Mapped[str] = mapped_column(String(40))
    jws: Mapped[str] = mapped_column(Text)
