"""Tables of the node audit chain: entries, a one-row head serialising appends, checkpoints."""

from sqlalchemy import Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from node.db import Base
from runtime.audit_log import EntryColumns, HeadColumns


class AuditRow(EntryColumns, Base):
    """One entry of this side's chain (columns: `runtime.audit_log.EntryColumns`)."""

    __tablename__ = "audit_log"


class AuditHead(HeadColumns, Base):
    """The chain's tip, one row (columns: `runtime.audit_log.HeadColumns`)."""

    __tablename__ = "audit_head"


class CheckpointRow(Base):
    """A chain head this node signed; `published_at` is set once the hub has accepted it."""

    __tablename__ = "audit_checkpoints"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    hash: Mapped[str] = mapped_column(String(64))
    jws: Mapped[str] = mapped_column(Text)
    signed_at: Mapped[str] = mapped_column(String(40))
    published_at: Mapped[str | None] = mapped_column(String(40), nullable=True)
