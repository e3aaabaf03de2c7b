"""What the module routes return (in addition to the v1 wire models)."""

from pydantic import BaseModel, ConfigDict


class ModuleSummary(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    version: int
    title: str
    variables: tuple[str, ...]
    sources: tuple[str, ...]


class CoverageAccepted(BaseModel):
    model_config = ConfigDict(frozen=True)

    node_id: str
    mappings: int
