"""The hub's combined answer to a query across nodes."""

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import SerializerFunctionWrapHandler, model_serializer

from contracts.v1.base import WireModel
from contracts.v1.harmonisation import VariableAnswer
from contracts.v1.query import QuerySpec
from contracts.v1.release import CellStatus, Component, Mechanism, SuppressionReason

# ok: answered; pending: asked, no answer yet; timeout: no answer by the deadline (or the
# node's own timeout); expired: a pull task nobody collected before it expired.
NodeOutcome = Literal["ok", "refused", "failed", "timeout", "pending", "expired"]


# Added to NodeStatus and QueryResult after v1's first release: serialized only when set.
NODE_STATUS_ADDED_FIELDS = ("rho", "epsilon", "delta", "mechanism", "noise_scale", "components")
RESULT_ADDED_FIELDS = ("grid", "grid_resolution")


def _omit_unset(data: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    for name in names:
        if name in data and data[name] is None:
            del data[name]
    return data


class NodeStatus(WireModel):
    """How one node answered; `error_code` is the node's machine-readable refusal code.

    For a node that answered, the guarantee of its own answer as the node signed it: the
    zCDP cost `rho` it spent, the (`epsilon`, `delta`)-DP statement that implies, the
    mechanism and standard deviation of the noise on each count (`noise_scale`), and every
    noisy measurement (`components`: mechanism, scale, L2 sensitivity and rho of each). Under
    secure aggregation `noise_scale` is this node's share of the noise.
    """

    node_id: str
    country: str | None = None
    outcome: NodeOutcome
    error_code: str | None = None
    message: str | None = None
    rho: float | None = None
    epsilon: float | None = None
    delta: float | None = None
    mechanism: Mechanism | None = None
    noise_scale: float | None = None
    components: tuple[Component, ...] | None = None

    @model_serializer(mode="wrap")
    def _omit_added_defaults(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return _omit_unset(handler(self), NODE_STATUS_ADDED_FIELDS)


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
    # Added for quantiles and histograms: the public grid the cells are over (candidates or
    # edges), and for quantiles the widest bin between the value bounds (a quantile interval
    # is never narrower than the bin holding the quantile; docs/privacy.md).
    grid: tuple[float, ...] | None = None
    grid_resolution: float | None = None

    @model_serializer(mode="wrap")
    def _omit_added_defaults(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return _omit_unset(handler(self), RESULT_ADDED_FIELDS)


GUARANTEE_COLUMNS = ("rho", "epsilon", "delta", "mechanism", "noise_scale")


def cell_guarantee(result: QueryResult, cell: ResultCell) -> dict[str, str]:
    """The guarantee behind one cell: `guarantee_text` of the nodes it combines."""
    statuses = {n.node_id: n for n in result.nodes}
    return guarantee_text([statuses[n] for n in cell.nodes if n in statuses])


def guarantee_text(contributors: Sequence[NodeStatus]) -> dict[str, str]:
    """The guarantee behind one number, as text for a table or file: for each of
    `GUARANTEE_COLUMNS`, the value every contributing node states (numbers in `repr` form,
    so nothing is rounded away), or `node=value` pairs joined by `; ` when they differ.
    Empty when no contributing node stated it (releases from before nodes did)."""
    out: dict[str, str] = {}
    for name in GUARANTEE_COLUMNS:
        values = [(n.node_id, getattr(n, name)) for n in contributors]
        known = [(node, _text(value)) for node, value in values if value is not None]
        distinct = {text for _, text in known}
        if len(distinct) == 1 and len(known) == len(values):
            out[name] = distinct.pop()
        else:
            out[name] = "; ".join(f"{node}={text}" for node, text in known)
    return out


def _text(value: object) -> str:
    return repr(float(value)) if isinstance(value, float | int) else str(value)
