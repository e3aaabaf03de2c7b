"""Table of agreement versions this node has signed, and their status here."""

from sqlalchemy import Integer, String, Text
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
    # The signature's way to the hub: sent at once, retried until the hub confirms
    # (`hub_received_at`, with the version's status there) or refuses it for good (its code).
    hub_received_at: Mapped[str | None] = mapped_column(String(40), nullable=True)
    hub_answer: Mapped[str | None] = mapped_column(String(100), nullable=True)
    hub_status: Mapped[str | None] = mapped_column(String(20), nullable=True)


class AgreementNoticeRow(Base):
    """Outbox of the steward's status changes, signed by the node, until the hub has them.

    Suspension and revocation take effect at the node when the row is written; telling the
    hub is a courtesy that may wait until it is reachable again.
    """

    __tablename__ = "agreement_notices"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    agreement_id: Mapped[str] = mapped_column(String(100), index=True)
    status: Mapped[str] = mapped_column(String(20))
    at: Mapped[str] = mapped_column(String(40))
    jws: Mapped[str] = mapped_column(Text)
    reported_at: Mapped[str | None] = mapped_column(String(40), nullable=True)
    # The hub's refusal code, if it refused the notice for good (then it is not retried).
    hub_answer: Mapped[str | None] = mapped_column(String(100), nullable=True)
