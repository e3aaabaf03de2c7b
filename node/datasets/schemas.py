"""What the dataset store hands to the rest of the node."""

from pathlib import Path

from pydantic import BaseModel, ConfigDict

from contracts.v1 import DatasetContract


class LoadedDataset(BaseModel):
    """One stored dataset version, ready to scan. Internal: never sent over the wire."""

    model_config = ConfigDict(frozen=True)

    contract: DatasetContract
    contract_digest: str
    parquet_path: Path
    data_sha256: str


class Manifest(BaseModel):
    """manifest.json of a version. `rows` is exact and stays on disk at the node."""

    model_config = ConfigDict(frozen=True)

    name: str
    version: int
    rows: int
    data_sha256: str
    contract_digest: str
    created_at: str
