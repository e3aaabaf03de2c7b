"""Agreements in and out: a version with its status, signers and each party's standing."""

from datetime import datetime
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from contracts.budget import Amount
from contracts.v1 import SignedAgreement

AgreementStatus = Literal[
    "draft",
    "proposed",
    "active",
    "not_yet_valid",
    "expired",
    "suspended",
    "revoked",
    "superseded",
]
PartyStatus = Literal["active", "suspended", "revoked"]


class SignerRead(BaseModel):
    """Who signed, with the key fingerprint (RFC 7638 thumbprint) and when."""

    model_config = ConfigDict(frozen=True)

    signer: str
    kid: str
    signed_at: datetime


class PartyStanding(BaseModel):
    """A party's latest suspension, resumption or revocation as the hub knows it."""

    model_config = ConfigDict(frozen=True)

    party: str
    status: PartyStatus
    at: datetime
    reason: str = ""


class AgreementRead(BaseModel):
    agreement: SignedAgreement
    status: AgreementStatus
    missing_signers: tuple[str, ...] = ()
    signers: tuple[SignerRead, ...] = ()
    # Nodes that suspended or revoked at their end: they refuse, the others still answer.
    standings: tuple[PartyStanding, ...] = ()
    # What the nodes reported they spent this budget period (the rho of the releases they
    # sent; refusals cost nothing): the most any one node spent, and per node. Exact
    # decimals (JSON: decimal strings), like every budget amount.
    rho_spent_at_hub: Amount = Decimal(0)
    rho_spent_by_node: dict[str, Amount] = Field(default_factory=dict)


class StatusChange(BaseModel):
    """The secretariat's suspension, resumption or revocation at the hub."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    reason: str = Field(default="", max_length=500)
