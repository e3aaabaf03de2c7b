"""The frozen, closed pydantic base every v1 wire model derives from."""

from pydantic import BaseModel, ConfigDict


class WireModel(BaseModel):
    """A v1 wire model: immutable and refusing unknown fields, so a change is a new version."""

    model_config = ConfigDict(frozen=True, extra="forbid")
