"""What a node releases for one query: noisy cells with 95% intervals, signed by the node."""

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import Field

from contracts.v1.base import WireModel
from contracts.v1.query import Measure

CellStatus = Literal["ok", "suppressed"]
SuppressionReason = Literal["below_min_cell_size", "interval_too_wide", "suppressed_at_node"]


class Cell(WireModel):
    """One combination of group levels.

    For `share`, `numerator` and `denominator` are the node's noisy counts (each a DP
    release of its own) so that the hub can combine nodes; `estimate` is their ratio.
    A suppressed cell carries no estimate and no components. Under an agreement with
    `suppression: combined` the node suppresses nothing (the hub applies the rules after
    combining); a share cell whose noisy denominator is not positive then carries its
    components but no estimate or interval.
    """

    key: tuple[str, ...]
    status: CellStatus
    estimate: float | None = None
    ci95_low: float | None = None
    ci95_high: float | None = None
    numerator: int | None = None
    denominator: int | None = None
    reason: SuppressionReason | None = None


class Release(WireModel):
    """A node's signed answer. `noise_scale` is the std of the discrete Gaussian on each count."""

    query_id: UUID
    node_id: str
    agreement_id: str
    agreement_version: int
    dataset: str
    contract_version: int
    measure: Measure
    group_by: tuple[str, ...]
    mechanism: Literal["discrete_gaussian"]
    rho: float
    noise_scale: float = Field(ge=0)
    request_digest: str
    cells: tuple[Cell, ...]
    released_at: datetime
