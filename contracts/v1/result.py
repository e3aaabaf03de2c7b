"""The hub's combined answer to a query across nodes."""

from datetime import datetime
from typing import Literal
from uuid import UUID

from contracts.v1.base import WireModel
from contracts.v1.harmonisation import VariableAnswer
from contracts.v1.query import QuerySpec
from contracts.v1.release import CellStatus, SuppressionReason

# ok: answered; pending: asked, no answer yet; timeout: no answer by the deadline (or the
# node's own timeout); expired: a pull task nobody collected before it expired.
NodeOutcome = Literal["ok", "refused", "failed", "timeout", "pending", "expired"]


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
    While `status` is `running` the cells cover the nodes that have answered so far; at the
    `deadline` the query completes with whatever arrived.
    """

    query_id: UUID
    spec: QuerySpec
    group_by: tuple[str, ...]
    status: Literal["complete", "partial", "failed", "running"]
    nodes: tuple[NodeStatus, ...]
    cells: tuple[ResultCell, ...]
    created_at: datetime
    deadline: datetime | None = None
    completed_at: datetime | None = None
    # Added for module queries: per queried variable, the nodes that answered it and those
    # that do not collect it (never imputed as zero). Empty for dataset queries.
    variables: tuple[VariableAnswer, ...] = ()
    # Added for secure aggregation: how the nodes' noise was combined. `secure`: the hub
    # learnt only the masked sum, which carries the noise of one central release;
    # `per_node`: each node's release carries its own full noise. `aggregation_note` says why
    # an agreement that allows secure aggregation fell back, or how many attempts it took.
    aggregation: Literal["per_node", "secure"] = "per_node"
    aggregation_note: str | None = None
