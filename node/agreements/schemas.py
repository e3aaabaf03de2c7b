"""What the node says about the agreements it honours (CLI and API output)."""

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from contracts.v1 import AgreementSignature, AgreementTerms

AgreementStatus = Literal["active", "suspended", "revoked"]


class AgreementRecord(BaseModel):
    model_config = ConfigDict(frozen=True)

    agreement_id: str
    version: int
    digest: str
    status: AgreementStatus
    signed_at: datetime
    terms: AgreementTerms
    signature: AgreementSignature
    # The signature's way to the hub: confirmed when (with the version's status there), or
    # refused for good with the hub's code; neither while it waits to be (re)sent.
    hub_received_at: datetime | None = None
    hub_answer: str | None = None
    hub_status: str | None = None


class SigningPreview(BaseModel):
    """What a steward reviews before signing: the rules in plain language, and the digest."""

    model_config = ConfigDict(frozen=True)

    agreement_id: str
    version: int
    digest: str
    already_signed: bool
    summary: str


class StatusChange(BaseModel):
    """The steward's decision; `reason` is free text the steward writes, sent to the hub."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    reason: str = Field(default="", max_length=500)


class NoticeReport(BaseModel):
    """How telling the hub about status changes went: sent, still waiting, refused by the hub."""

    model_config = ConfigDict(frozen=True)

    sent: int
    pending: int
    refused: int
    hub_reachable: bool
    message: str = ""


class OutboxReport(BaseModel):
    """How telling the hub went, for signatures and for status notices."""

    model_config = ConfigDict(frozen=True)

    signatures: NoticeReport
    notices: NoticeReport

    def total(self) -> NoticeReport:
        both = (self.signatures, self.notices)
        return NoticeReport(
            sent=sum(r.sent for r in both),
            pending=sum(r.pending for r in both),
            refused=sum(r.refused for r in both),
            hub_reachable=all(r.hub_reachable for r in both),
            message=next((r.message for r in both if r.message), ""),
        )


class SignedOutcome(BaseModel):
    """A signature made here, and how handing it to the hub went."""

    model_config = ConfigDict(frozen=True)

    signature: AgreementSignature
    report: NoticeReport


class StatusOutcome(BaseModel):
    model_config = ConfigDict(frozen=True)

    agreement_id: str
    status: AgreementStatus
    changed: bool
    report: NoticeReport | None = None
