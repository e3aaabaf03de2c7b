"""Check a query against its agreement and plan one signed request per node (pure)."""

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal
from uuid import UUID

from joserfc.jwk import OKPKey

from contracts import signing
from contracts.agreement_rules import HUB_DIMS, filter_refusal, grid_refusal
from contracts.v1 import AgreementTerms, Filter, QueryRequest, QuerySpec
from hub.queries.exceptions import CostOverCap, OrgNotPermitted, TermViolation

# Answered at the hub by splitting on nodes; never sent to a node.


@dataclass(frozen=True)
class NodeTarget:
    """A registered node party as planning needs it."""

    node_id: str
    country: str
    url: str
    public_jwk: dict[str, Any]


@dataclass(frozen=True)
class PlannedCall:
    target: NodeTarget
    request: QueryRequest
    jws: str
    # SHA-256 hex of the signed payload (the request's canonical JSON): `signing.digest` of
    # `request`, which the node's release must quote.
    digest: str


@dataclass(frozen=True)
class Plan:
    query_id: UUID
    spec: QuerySpec
    node_spec: QuerySpec
    calls: tuple[PlannedCall, ...]


def check_spec(*, spec: QuerySpec, terms: AgreementTerms, organisation: str) -> None:
    """Refuse, before any node is contacted, whatever the agreement does not allow."""
    if organisation not in terms.analyst_organisations:
        raise OrgNotPermitted()
    if spec.module_version is not None:
        if (spec.dataset, spec.module_version) not in {(m.name, m.version) for m in terms.modules}:
            raise TermViolation(
                "the module version is not in the agreement", code="module_not_allowed"
            )
    elif spec.dataset not in {d.name for d in terms.datasets}:
        raise TermViolation("the dataset is not in the agreement", code="dataset_not_allowed")
    if spec.measure not in terms.measures:
        raise TermViolation(
            "the measure is not allowed by the agreement", code="measure_not_allowed"
        )
    if spec.column is not None and spec.column not in terms.columns:
        raise TermViolation(
            f"column {spec.column!r} may not be measured under the agreement",
            code="column_not_allowed",
        )
    for dim in (*spec.group_by, *(f.column for f in spec.filters)):
        if dim not in HUB_DIMS and dim not in terms.dims:
            raise TermViolation(
                f"dim {dim!r} may not be grouped on or filtered under the agreement",
                code="dim_not_allowed",
            )
    data_dims = [d for d in spec.group_by if d not in HUB_DIMS]
    if len(data_dims) > terms.max_dims:
        raise TermViolation(
            f"at most {terms.max_dims} data dims per query under the agreement",
            code="too_many_dims",
        )
    reason = filter_refusal(spec)
    if reason is not None:
        raise TermViolation(reason, code="invalid_spec")
    refusal = grid_refusal(terms, spec)
    if refusal is not None:
        raise TermViolation(refusal, code="grid_not_allowed")
    if spec.rho > terms.rho_per_query_max:
        raise CostOverCap()
    if spec.rho < terms.rho_floor:
        raise TermViolation(
            f"rho is below the agreement's floor of {terms.rho_floor:g} (term min_rho)",
            code="rho_below_floor",
        )


def node_spec(spec: QuerySpec) -> QuerySpec:
    """The spec without hub dims, as each node receives it."""
    return spec.model_copy(
        update={
            "group_by": tuple(d for d in spec.group_by if d not in HUB_DIMS),
            "filters": tuple(f for f in spec.filters if f.column not in HUB_DIMS),
        }
    )


def select_targets(
    *, spec: QuerySpec, terms: AgreementTerms, nodes: Sequence[NodeTarget]
) -> tuple[NodeTarget, ...]:
    """Every node party, narrowed by filters on hub dims (country, node)."""
    by_id = {n.node_id: n for n in nodes}
    targets = [by_id[node_id] for node_id in terms.node_ids if node_id in by_id]
    for flt in spec.filters:
        targets = [t for t in targets if _hub_value(t, flt) is not False]
    if not targets:
        raise TermViolation("no node party matches the query's filters", code="no_nodes_selected")
    return tuple(targets)


def _hub_value(target: NodeTarget, flt: Filter) -> bool | None:
    if flt.column == "country":
        return target.country in flt.levels
    if flt.column == "node":
        return target.node_id in flt.levels
    return None


def plan_query(
    *,
    query_id: UUID,
    spec: QuerySpec,
    terms: AgreementTerms,
    agreement_digest: str,
    targets: Sequence[NodeTarget],
    hub_id: str,
    key: OKPKey,
    now: datetime,
    ttl_seconds: int,
    analyst: str | None = None,
    analyst_organisation: str | None = None,
    aggregation: Literal["per_node", "secure"] = "per_node",
) -> Plan:
    """One signed request per node. Node datasets are disjoint, so by parallel composition
    each node spends the full `rho` on its own rows and the combination costs `rho`.

    `aggregation="secure"` marks every request as one for secure aggregation: nodes then
    answer it only inside the hub's SecureInvite and SecureRoster, never as a plain query."""
    sent_spec = node_spec(spec)
    if not targets:
        return Plan(query_id=query_id, spec=spec, node_spec=sent_spec, calls=())
    # One validated request; each node's differs only in its node id and nonce, so it is a
    # copy of the template (no re-validation) and its canonical JSON is written once with the
    # two values put in per node (`signing.sign_variants`): what
    # stays per node is encoding and the Ed25519 signature the protocol binds to the node.
    template = QueryRequest(
        query_id=query_id,
        hub_id=hub_id,
        node_id=targets[0].node_id,
        agreement_id=terms.agreement_id,
        agreement_version=terms.version,
        agreement_digest=agreement_digest,
        spec=sent_spec,
        rho=spec.rho,
        issued_at=now,
        expires_at=now + timedelta(seconds=ttl_seconds),
        nonce=secrets.token_hex(16),
        # The node checks these against the agreement itself and records who spent.
        analyst=analyst,
        analyst_organisation=analyst_organisation,
        dissemination=terms.dissemination,
        aggregation=aggregation,
    )
    document = template.model_dump(mode="json")
    nonces = [secrets.token_hex(16) for _ in targets]
    signed = signing.sign_variants(
        document,
        key,
        ({"node_id": t.node_id, "nonce": nonce} for t, nonce in zip(targets, nonces, strict=True)),
    )
    calls = [
        PlannedCall(
            target=target,
            request=template.model_copy(update={"node_id": target.node_id, "nonce": nonce}),
            jws=jws,
            digest=digest,  # of the bytes signed: the release must quote it
        )
        for target, nonce, (jws, digest) in zip(targets, nonces, signed, strict=True)
    ]
    return Plan(query_id=query_id, spec=spec, node_spec=sent_spec, calls=tuple(calls))
