"""Who is calling the node's steward API, and the steward account API's in/out types."""

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict


class Steward(BaseModel):
    model_config = ConfigDict(frozen=True)

    token_id: int
    name: str
    via: Literal["token", "session"] = "token"
    account_id: int | None = None
    must_change_password: bool = False


class StewardAccountRead(BaseModel):
    account_id: int
    username: str
    display_name: str
    must_change_password: bool
    totp_enabled: bool
    locked_until: datetime | None
    disabled: bool
    created_at: datetime


class LoginResult(BaseModel):
    """A bearer session token, shown once; send it as `Authorization: Bearer ...`."""

    token: str
    expires_at: datetime
    username: str
    must_change_password: bool
