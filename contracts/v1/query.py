"""Query wire models: what an analyst asks (QuerySpec) and what the hub sends a node."""

import itertools
import math
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import (
    Field,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)

from contracts.v1.base import WireModel

Measure = Literal["count", "share", "sum", "mean", "quantile", "histogram"]
MAX_GROUP_BY = 3
# Measures of a numeric column (bounded by the contract).
NUMERIC_MEASURES = ("sum", "mean", "quantile", "histogram")
# Fields added to QuerySpec after v1's first release: serialized only when set.
SPEC_ADDED_FIELDS = ("quantiles", "candidates", "edges", "weighted", "module_version")


class Filter(WireModel):
    """Keep rows whose public categorical `column` is one of `levels`."""

    column: str
    levels: tuple[str, ...] = Field(min_length=1)


class QuerySpec(WireModel):
    """An aggregate question over one dataset, disaggregated by public dims.

    `share` is the proportion of rows whose `column` equals `value` among rows where
    `column` is not missing. `sum`, `mean`, `quantile` and `histogram` measure a bounded
    numeric `column` (values clamped to the contract's bounds); `quantiles`, `candidates`
    and `edges` default from the contract (docs/privacy.md); `weighted` uses the contract's
    survey weight column. `rho` is the zCDP cost each node spends on its own rows.
    Hub-level dims (`country`, `node`) may appear in `group_by` at the hub; they are
    answered by splitting on nodes and never sent to a node.
    """

    agreement_id: str = Field(min_length=1, max_length=100)
    dataset: str = Field(min_length=1, max_length=63)
    measure: Measure
    column: str | None = None
    value: str | None = None
    group_by: tuple[str, ...] = ()
    filters: tuple[Filter, ...] = ()
    rho: float = Field(gt=0, le=10)
    # Added after v1's first release (left out of the canonical JSON while unset, so the
    # digest of an older spec is unchanged). See docs/privacy.md for each measure.
    quantiles: tuple[float, ...] | None = Field(default=None, min_length=1, max_length=9)
    candidates: tuple[float, ...] | None = Field(default=None, min_length=1, max_length=1000)
    edges: tuple[float, ...] | None = Field(default=None, min_length=2, max_length=201)
    weighted: bool = False
    # When set, `dataset` names a shared harmonisation module at this version instead of a
    # node dataset; each node answers through its own mapping (contracts.v1.harmonisation).
    module_version: int | None = Field(default=None, ge=1)

    @model_serializer(mode="wrap")
    def _omit_added_defaults(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        for name in SPEC_ADDED_FIELDS:
            if name in data and (data[name] is None or data[name] is False):
                del data[name]
        return data

    @field_validator("group_by")
    @classmethod
    def _distinct_dims(cls, dims: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(dims)) != len(dims):
            raise ValueError("group_by repeats a dim")
        if len(dims) > MAX_GROUP_BY + 1:
            raise ValueError(f"at most {MAX_GROUP_BY} data dims (plus country) per query")
        return dims

    @model_validator(mode="after")
    def _measure_needs(self) -> "QuerySpec":
        if self.measure == "share" and (self.column is None or self.value is None):
            raise ValueError("share needs a column and the value whose share is wanted")
        if self.measure == "count" and self.value is not None:
            raise ValueError("count takes no value")
        if self.measure in NUMERIC_MEASURES:
            if self.column is None:
                raise ValueError(f"{self.measure} needs a numeric column")
            if self.value is not None:
                raise ValueError(f"{self.measure} takes no value")
        if self.quantiles is not None:
            if self.measure != "quantile":
                raise ValueError("quantiles are only for the quantile measure")
            if any(not 0 < q < 1 for q in self.quantiles) or len(set(self.quantiles)) != len(
                self.quantiles
            ):
                raise ValueError("quantiles must be distinct probabilities strictly in (0, 1)")
        if self.candidates is not None:
            if self.measure != "quantile":
                raise ValueError("candidates are only for the quantile measure")
            _strictly_increasing(self.candidates, "candidates")
        if self.edges is not None:
            if self.measure != "histogram":
                raise ValueError("edges are only for the histogram measure")
            _strictly_increasing(self.edges, "edges")
        return self


def _strictly_increasing(values: tuple[float, ...], name: str) -> None:
    if any(not math.isfinite(v) for v in values):
        raise ValueError(f"{name} must be finite numbers")
    if any(b <= a for a, b in itertools.pairwise(values)):
        raise ValueError(f"{name} must be strictly increasing")


class QueryRequest(WireModel):
    """One node's part of a query, signed by the hub (Ed25519 JWS over canonical JSON)."""

    query_id: UUID
    hub_id: str
    node_id: str
    agreement_id: str
    agreement_version: int
    agreement_digest: str
    spec: QuerySpec
    rho: float = Field(gt=0)
    issued_at: datetime
    expires_at: datetime
    nonce: str = Field(min_length=16, max_length=64)
    # Added after v1's first release (left out of the canonical JSON while None): who asks
    # and for what audience, so the node checks the agreement's analyst organisations and
    # dissemination level itself, and its ledger says by whom a budget was spent.
    analyst: str | None = Field(default=None, max_length=200)
    analyst_organisation: str | None = Field(default=None, max_length=200)
    dissemination: Literal["public", "partners", "restricted"] | None = None
    # Added with secure aggregation's route binding (left out while "per_node"): a request
    # the hub signs for secure aggregation says so, so a node answers it only inside a
    # SecureInvite or SecureRoster and never as a plain query (docs/federation.md).
    aggregation: Literal["per_node", "secure"] = "per_node"

    @model_serializer(mode="wrap")
    def _omit_added_defaults(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        for name in ("analyst", "analyst_organisation", "dissemination"):
            if name in data and data[name] is None:
                del data[name]
        if data.get("aggregation") == "per_node":
            del data["aggregation"]
        return data


class Signed(WireModel):
    """A compact JWS carrying one wire model as canonical JSON."""

    jws: str = Field(min_length=10, max_length=1_000_000)


class ErrorBody(WireModel):
    """Every refusal: a stable machine-readable code and a message that names no data value."""

    code: str
    message: str


class ErrorResponse(WireModel):
    error: ErrorBody
