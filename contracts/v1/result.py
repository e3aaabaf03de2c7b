"""The hub's combined answer to a query across nodes."""

from datetime import datetime
from typing import Literal
from uuid import UUID

from contracts.v1.base import WireModel
from contracts.v1.query import QuerySpec
from contracts.v1.release import CellStatus, SuppressionReason

NodeOutcome = Literal["ok", "refused", "failed", "timeout"]


class NodeStatus(WireModel):
    """How one node answered; `error_code` is the node's machine-readable refusal code."""

    node_id: str
    country: str | None = None
    outcome: NodeOutcome
    error_code: str | None = None
    message: str | None = None


class ResultCell(WireModel):
    key: tuple[str, ...]
    status: CellStatus
    estimate: float | None = None
    ci95_low: float | None = None
    ci95_high: float | None = None
    reason: SuppressionReason | None = None
    nodes: tuple[str, ...] = ()


class QueryResult(WireModel):
    """Combined cells (sums of noisy counts; shares as ratios with propagated intervals).

    Nodes that did not answer are listed in `nodes` with their outcome and never imputed.
    """

    query_id: UUID
    spec: QuerySpec
    group_by: tuple[str, ...]
    status: Literal["complete", "partial", "failed"]
    nodes: tuple[NodeStatus, ...]
    cells: tuple[ResultCell, ...]
    created_at: datetime
