"""Agreement (MoU) terms and the signatures each party puts on one version's digest."""

import itertools
import math
from datetime import datetime
from typing import Any, Literal

from pydantic import Field, SerializerFunctionWrapHandler, model_serializer, model_validator

from contracts.v1.base import MAX_VERSION, WireModel
from contracts.v1.harmonisation import ModuleRef
from contracts.v1.query import MAX_GROUP_BY, Measure

PartyRole = Literal["secretariat", "cso", "nso", "other"]
Dissemination = Literal["public", "partners", "restricted"]
Suppression = Literal["per_node", "combined"]
Aggregation = Literal["per_node", "secure"]
BudgetPeriod = Literal["validity", "calendar_year", "quarter"]
GridRule = Literal["any", "public"]
NodeAgreementStatus = Literal["active", "suspended", "revoked"]
# Broadest first: a request may ask for the agreement's level or a narrower one.
DISSEMINATION_ORDER: tuple[Dissemination, ...] = ("public", "partners", "restricted")
# The smallest rho a query may cost unless an agreement sets `min_rho`: a count's noise has
# sigma ~ 71 per unit of sensitivity (a 95% interval of about +-139), still informative for
# the totals and large groups of the surveys Sauti serves, and a budget of rho 1 then buys at
# most 10,000 answers. Below it an analyst could buy near-useless releases for almost no
# budget, over and over (docs/privacy.md, The rho floor).
DEFAULT_MIN_RHO = 1e-4
# No agreement may set its floor lower than this: noise scales stay finite and sane however
# the terms are drafted (sigma <= ~7,071 per unit of sensitivity).
MIN_RHO_LIMIT = 1e-8
# Fields added after the first release of v1, with their defaults. They are left out of the
# canonical JSON while at their default, so every digest signed before they existed still holds.
_ADDED_TERM_DEFAULTS: dict[str, Any] = {
    "budget_period": "validity",
    "amends_digest": None,
    "modules": (),
    "aggregation": "per_node",
    "collusion": 0,
    "min_rho": DEFAULT_MIN_RHO,
    "grids": "any",
    "public_grids": (),
}


class Party(WireModel):
    """A signatory organisation; a CSO party names the node that holds its data."""

    organisation: str = Field(min_length=1, max_length=200)
    role: PartyRole
    country: str | None = Field(default=None, pattern=r"^\d{3}$")
    node_id: str | None = None


class PublicGrid(WireModel):
    """A quantile candidate grid or histogram bin edges the agreement publishes for a column."""

    column: str
    kind: Literal["candidates", "edges"]
    values: tuple[float, ...] = Field(min_length=1, max_length=1000)

    @model_validator(mode="after")
    def _increasing(self) -> "PublicGrid":
        if any(not math.isfinite(v) for v in self.values):
            raise ValueError("grid values must be finite numbers")
        if any(b <= a for a, b in itertools.pairwise(self.values)):
            raise ValueError("grid values must be strictly increasing")
        if self.kind == "edges" and len(self.values) < 2:
            raise ValueError("edges need at least two values")
        return self


class DatasetRef(WireModel):
    name: str
    contract_version: int = Field(ge=1, le=MAX_VERSION)


class AgreementTerms(WireModel):
    """One version of an agreement. Its digest (canonical JSON, SHA-256) is what parties sign."""

    agreement_id: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,99}$")
    version: int = Field(ge=1, le=MAX_VERSION)
    title: str
    purpose: str
    purpose_code: str = "sdg-monitoring"
    hub_id: str
    parties: tuple[Party, ...] = Field(min_length=2)
    datasets: tuple[DatasetRef, ...] = Field(
        description="node datasets covered; may be empty when `modules` names at least one"
    )
    modules: tuple[ModuleRef, ...] = Field(
        default=(), description="shared harmonisation modules covered (each node maps its own)"
    )
    measures: tuple[Measure, ...] = Field(min_length=1)
    columns: tuple[str, ...] = Field(description="columns that may be measured")
    dims: tuple[str, ...] = Field(description="columns that may be grouped on or filtered")
    max_dims: int = Field(default=MAX_GROUP_BY, ge=0, le=MAX_GROUP_BY)
    min_cell_size: int = Field(default=10, ge=0)
    max_ci_relative_width: float | None = Field(default=None, gt=0)
    suppression: Suppression = Field(
        default="per_node",
        description=(
            "per_node: each node withholds its own small cells, and a combined cell any node"
            " withheld is withheld. combined: nodes release every noisy cell to the hub, which"
            " applies the rules to the combined cells before anything is published."
        ),
    )
    aggregation: Aggregation = Field(
        default="per_node",
        description=(
            "per_node: each node adds the full noise of its own release and the hub sums them."
            " secure: for unweighted count, share and sum queries over two or more push nodes"
            " online together, each node adds only a share of the noise and sends its vector"
            " masked (pairwise X25519 masks), so the hub learns only the sum, which carries the"
            " noise of one central release (docs/privacy.md, Secure aggregation). Other queries"
            " fall back to per-node noise and the result says so."
        ),
    )
    collusion: int = Field(
        default=0,
        ge=0,
        le=100,
        description=(
            "secure aggregation: how many nodes may collude with the hub while every other"
            " node keeps the full guarantee; each of k nodes adds noise for k - collusion"
        ),
    )
    rho_per_query_max: float = Field(gt=0)
    rho_budget: float = Field(
        gt=0, description="zCDP budget per node for each budget period (see budget_period)"
    )
    min_rho: float = Field(
        default=DEFAULT_MIN_RHO,
        ge=MIN_RHO_LIMIT,
        description=(
            "the least rho a query may cost (zCDP): smaller costs buy noise too wide to use and"
            " let a budget be split into endless releases. Never above rho_per_query_max; when"
            " left at its default it yields to a smaller rho_per_query_max."
        ),
    )
    budget_period: BudgetPeriod = Field(
        default="validity",
        description=(
            "validity: rho_budget covers the whole life of the agreement, amendments included."
            " calendar_year / quarter: rho_budget is granted afresh each UTC calendar year or"
            " quarter; unspent budget does not carry over."
        ),
    )
    amends_digest: str | None = Field(
        default=None,
        pattern=r"^[0-9a-f]{64}$",
        description="digest of the version this one amends (version > 1)",
    )
    grids: GridRule = Field(
        default="any",
        description=(
            "any: analysts may choose quantile candidates and histogram edges. public: only"
            " the defaults derived from each dataset contract's public bounds, or a grid listed"
            " in public_grids for that column, so no grid can be fitted around one"
            " respondent's value."
        ),
    )
    public_grids: tuple[PublicGrid, ...] = Field(
        default=(), description="grids allowed besides the contract defaults (grids: public)"
    )
    analyst_organisations: tuple[str, ...] = ()
    dissemination: Dissemination = "partners"
    valid_from: datetime
    valid_until: datetime

    @model_validator(mode="after")
    def _check(self) -> "AgreementTerms":
        if self.valid_until <= self.valid_from:
            raise ValueError("valid_until must be after valid_from")
        if self.rho_per_query_max > self.rho_budget:
            raise ValueError("the per-query cap cannot exceed the budget")
        # Only an explicit floor is checked: versions signed before the field existed (and
        # stored since) take the default, which yields to their cap instead (`rho_floor`).
        if "min_rho" in self.model_fields_set and self.min_rho > self.rho_per_query_max:
            raise ValueError("min_rho cannot exceed the per-query cap")
        nodes = self.node_ids
        if len(set(nodes)) != len(nodes):
            raise ValueError("a node is named by more than one party")
        for name, values in (
            ("datasets", [d.name for d in self.datasets]),
            ("measures", list(self.measures)),
            ("columns", list(self.columns)),
            ("dims", list(self.dims)),
        ):
            if len(set(values)) != len(values):
                raise ValueError(f"{name} repeats an entry")
        if self.version == 1 and self.amends_digest is not None:
            raise ValueError("version 1 amends nothing")
        if not self.datasets and not self.modules:
            raise ValueError("an agreement covers at least one dataset or module")
        if len({m.name for m in self.modules}) != len(self.modules):
            raise ValueError("modules repeats an entry")
        if self.public_grids and self.grids != "public":
            raise ValueError("public_grids are listed only with grids: public")
        return self

    @model_serializer(mode="wrap")
    def _omit_added_defaults(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        for name, default in _ADDED_TERM_DEFAULTS.items():
            # An empty tuple serialises as [] in JSON mode.
            if name in data and (data[name] == default or (default == () and data[name] == [])):
                del data[name]
        return data

    @property
    def rho_floor(self) -> float:
        """The least rho a query may cost under these terms (never above the per-query cap)."""
        return min(self.min_rho, self.rho_per_query_max)

    @property
    def node_ids(self) -> tuple[str, ...]:
        return tuple(p.node_id for p in self.parties if p.node_id is not None)


class AgreementSignature(WireModel):
    """A party's compact JWS over {agreement_id, version, digest, signer, signed_at}."""

    signer: str
    kid: str
    jws: str


class SignedAgreement(WireModel):
    terms: AgreementTerms
    digest: str
    signatures: tuple[AgreementSignature, ...] = ()


class AgreementNotice(WireModel):
    """A node's signed report of its steward suspending, resuming or revoking an agreement.

    The node signs it with its own key; the hub accepts it only from a node party, and keeps
    the newest per node (by `at`), so a replayed older notice changes nothing.
    """

    agreement_id: str
    node_id: str
    status: NodeAgreementStatus
    at: datetime
    reason: str = Field(default="", max_length=500)


class AgreementFetch(WireModel):
    """A node asking its hub for the newest version of an agreement that names it (node-signed)."""

    agreement_id: str
    node_id: str
    hub_id: str
    issued_at: datetime
    nonce: str = Field(min_length=16, max_length=64)


class SignatureDelivery(WireModel):
    """A node handing its steward's signature of one version to its hub (node-signed).

    Fresh and never replayable (`issued_at`, `nonce`); the signature inside is its own
    authority, so delivering it again under a new nonce changes nothing at the hub.
    """

    hub_id: str
    node_id: str
    signature: AgreementSignature
    issued_at: datetime
    nonce: str = Field(min_length=16, max_length=64)


class SignaturePayload(WireModel):
    """What a signature commits to: exactly one version of one agreement."""

    agreement_id: str
    version: int
    digest: str
    signer: str
    signed_at: datetime
