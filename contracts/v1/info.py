"""What a node publishes about itself: identity, public key and dataset contracts."""

from datetime import datetime
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


class PublishedContracts(WireModel):
    """The public parts of every dataset contract a node serves, signed by the node's key.

    Served at the node's `GET /v1/contracts` (and posted to the hub by a pull node), so the
    hub can offer levels and labels and check a query before sending it. Contracts are
    public by design (codebook, levels, bounds, roles): nothing here comes from the data.
    """

    node_id: str
    issued_at: datetime
    datasets: tuple[DatasetInfo, ...]
