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


class StatusOutcome(BaseModel):
    model_config = ConfigDict(frozen=True)

    agreement_id: str
    status: AgreementStatus
    changed: bool
    report: NoticeReport | None = None
