"""What the node says about the agreements it honours (CLI and API output)."""

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict

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
