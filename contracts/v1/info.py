"""What a node publishes about itself: identity, public key and dataset contracts."""

from typing import Any

from contracts.v1.base import WireModel
from contracts.v1.dataset import DatasetInfo


class NodeInfo(WireModel):
    node_id: str
    name: str
    country: str
    public_jwk: dict[str, Any]
    kid: str
    datasets: tuple[DatasetInfo, ...]
