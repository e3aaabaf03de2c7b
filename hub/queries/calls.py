"""What one push delivery needs, gathered before any network I/O."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from contracts.v1 import QueryRequest
from hub.nodes.service import KeyedNode, node_keys
from hub.queries.planning import PlannedCall


@dataclass(frozen=True)
class PushCall:
    """Everything one delivery needs, read from the database (or the plan) before any I/O."""

    query_id: str
    node_id: str
    url: str
    jws: str
    request: QueryRequest
    keys: dict[str, dict[str, Any]]
    contract_version: int | None
    deadline: datetime
    request_digest: str


class PushNode(KeyedNode, Protocol):
    """What a delivery reads of a node: a `Node` row or a Core row of those columns."""

    @property
    def node_id(self) -> str: ...
    @property
    def url(self) -> str: ...
    @property
    def mode(self) -> str: ...
    @property
    def status(self) -> str: ...


def planned_push_calls(
    *,
    query_id: str,
    calls: Sequence[PlannedCall],
    nodes: Sequence[PushNode],
    contract_version: int | None,
    deadline: datetime,
    now: datetime,
) -> tuple[PushCall, ...]:
    """The push deliveries of a query just planned, from the plan's own requests and the node
    rows already read: the first dispatch needs no second read and no re-parsing (the digest
    of each request is the one planning took of the bytes it signed)."""
    by_id = {n.node_id: n for n in nodes}
    out = []
    for call in calls:
        node = by_id.get(call.target.node_id)
        if node is None or node.status != "active" or node.mode == "pull" or not node.url:
            continue
        out.append(
            PushCall(
                query_id=query_id,
                node_id=node.node_id,
                url=node.url,
                jws=call.jws,
                request=call.request,
                keys=node_keys(node, now=now),  # a new dict per call
                contract_version=contract_version,
                deadline=deadline,
                request_digest=call.digest,
            )
        )
    return tuple(out)
