"""Node registry and enrollment tokens, in and out."""

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class NodeCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    node_id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
    name: str = Field(min_length=1, max_length=200)
    country: str = Field(pattern=r"^\d{3}$", description="UN M49 code")
    url: str = Field(pattern=r"^https?://", max_length=500)
    public_jwk: dict[str, Any]


class NodeRead(BaseModel):
    node_id: str
    name: str
    country: str
    url: str
    kid: str
    public_jwk: dict[str, Any]
    registered_at: datetime
    mode: Literal["push", "pull"] = "push"
    status: Literal["active", "removed"] = "active"
    previous_kid: str | None = None
    previous_valid_until: datetime | None = None


class NodeKeyRead(BaseModel):
    """One key of a node's history: current from `valid_from` (None: unknown, migrated) to
    `retired_at`; new messages it signed are taken until `valid_until` (the overlap's end)."""

    kid: str
    public_jwk: dict[str, Any]
    valid_from: datetime | None
    retired_at: datetime | None
    valid_until: datetime | None


class EnrollmentTokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    node_id: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9][a-z0-9._-]{0,99}$",
        description="If set, only a node with this id can use the token.",
    )
    note: str = Field(default="", max_length=200)
    ttl_hours: float = Field(default=72, gt=0, le=24 * 30)


class EnrollmentTokenRead(BaseModel):
    token_id: int
    node_id: str | None
    note: str
    created_by: str
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None
    used_by: str | None


class EnrollmentTokenIssued(EnrollmentTokenRead):
    """Returned once, at creation: the only time the token itself is shown."""

    token: str


class ContractsStored(BaseModel):
    """The contract versions a publication added or changed (`name:vN`); empty: none."""

    stored: list[str]


class NodeContractRead(BaseModel):
    node_id: str
    dataset: str
    version: int
    digest: str
    kid: str
    issued_at: datetime
    received_at: datetime
    contract: dict[str, Any]
