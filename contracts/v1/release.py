"""What a node releases for one query: noisy cells with 95% intervals, signed by the node."""

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import Field, SerializerFunctionWrapHandler, model_serializer

from contracts.v1.base import WireModel
from contracts.v1.query import Measure

CellStatus = Literal["ok", "suppressed"]
SuppressionReason = Literal[
    "below_min_cell_size", "interval_too_wide", "suppressed_at_node", "grids_differ"
]
Mechanism = Literal["discrete_gaussian", "gaussian"]
# Reserved dims that extend a release's `group_by` (never column names: those match
# ^[A-Za-z_]...): the histogram bin label and the quantile probability of a cell.
BIN_DIM = "@bin"
QUANTILE_DIM = "@quantile"
# Fields added to Cell and Release after v1's first release: serialized only when set.
CELL_ADDED_FIELDS = (
    "variance",
    "numerator_variance",
    "denominator_variance",
    "covariance",
    "bins",
)
RELEASE_ADDED_FIELDS = (
    "components",
    "epsilon",
    "delta",
    "weighted",
    "grid",
    "bounds",
    "integer",
)


def _omit_unset(data: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    for name in names:
        if name in data and (data[name] is None or data[name] is False):
            del data[name]
    return data


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
    # Floats since weighted measures (an integral float canonicalises like an int).
    numerator: float | None = None
    denominator: float | None = None
    reason: SuppressionReason | None = None
    # Added after v1's first release (omitted while unset). The DP noise variance of
    # `estimate` (count, sum, histogram; per bin for quantile), of the ratio's components
    # and their covariance (share, mean, sum), and a quantile's noisy counts over the
    # release's candidate grid: what the hub needs to combine nodes (docs/privacy.md).
    variance: float | None = Field(default=None, ge=0)
    numerator_variance: float | None = Field(default=None, ge=0)
    denominator_variance: float | None = Field(default=None, ge=0)
    covariance: float | None = None
    bins: tuple[float, ...] | None = None

    @model_serializer(mode="wrap")
    def _omit_added_defaults(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return _omit_unset(handler(self), CELL_ADDED_FIELDS)


class Component(WireModel):
    """One noisy measurement of a release: its mechanism, noise scale and zCDP cost."""

    name: str
    mechanism: Mechanism
    scale: float = Field(ge=0)
    sensitivity: float = Field(ge=0)
    rho: float = Field(ge=0)


class Release(WireModel):
    """A node's signed answer. `noise_scale` is the std of the noise on each count (the
    count component's; see `components` for every measurement of the release)."""

    query_id: UUID
    node_id: str
    agreement_id: str
    agreement_version: int
    dataset: str
    contract_version: int
    measure: Measure
    group_by: tuple[str, ...]
    mechanism: Mechanism
    rho: float
    noise_scale: float = Field(ge=0)
    request_digest: str
    cells: tuple[Cell, ...]
    released_at: datetime
    # Added after v1's first release (omitted while unset): every noisy measurement, the
    # (epsilon, delta)-DP guarantee implied by `rho`, whether survey weights were used,
    # and the public grid (quantile candidates or histogram edges) the cells are over.
    components: tuple[Component, ...] | None = None
    epsilon: float | None = None
    delta: float | None = None
    weighted: bool = False
    grid: tuple[float, ...] | None = None
    # Added later still: the public bounds [L, U] the measured values were clamped to
    # (numeric measures) and whether the column holds integers. The hub needs them to make
    # the same intervals as the node when it pools nodes: a quantile's bins reach from L to
    # U, a sum of values >= 0 is >= 0, a mean lies in [L, U] (contracts/accuracy.py).
    bounds: tuple[float, float] | None = None
    integer: bool = False

    @model_serializer(mode="wrap")
    def _omit_added_defaults(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return _omit_unset(handler(self), RELEASE_ADDED_FIELDS)
