"""Agreements out: the signed version plus its status at the hub."""

from typing import Literal

from pydantic import BaseModel

from contracts.v1 import SignedAgreement

AgreementStatus = Literal["proposed", "active", "not_yet_valid", "expired"]


class AgreementRead(BaseModel):
    agreement: SignedAgreement
    status: AgreementStatus
    missing_signers: tuple[str, ...] = ()
