"""Who is calling: the user behind an API token."""

from typing import Literal

from pydantic import BaseModel, ConfigDict

Role = Literal["admin", "secretariat", "analyst", "auditor"]
ROLES: tuple[Role, ...] = ("admin", "secretariat", "analyst", "auditor")


class User(BaseModel):
    model_config = ConfigDict(frozen=True)

    token_id: int
    name: str
    organisation: str
    role: Role
