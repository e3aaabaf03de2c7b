"""Node registry in and out."""

from datetime import datetime
from typing import Any

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
