"""Who is calling the node's steward API."""

from pydantic import BaseModel, ConfigDict


class Steward(BaseModel):
    model_config = ConfigDict(frozen=True)

    token_id: int
    name: str
