"""Table of agreement versions this node has signed, and their status here."""

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from node.db import Base


class AgreementRow(Base):
    __tablename__ = "agreements"

    agreement_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    version: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    digest: Mapped[str] = mapped_column(String(64))
    terms: Mapped[str] = mapped_column(Text)
    signature: Mapped[str] = mapped_column(Text)
    # active | suspended | revoked; suspension and revocation apply to every version.
    status: Mapped[str] = mapped_column(String(20))
    signed_at: Mapped[str] = mapped_column(String(40))
