"""Unit tests of `hub.queries.planning`: term checks and signed per-node requests."""

from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple
from uuid import uuid4

import pytest
from hub_support import ANALYST_ORG, make_terms

from contracts import signing
from contracts.v1 import Filter, QueryRequest, QuerySpec
from hub.exceptions import HubError
from hub.queries.calls import planned_push_calls
from hub.queries.planning import NodeTarget, check_spec, node_spec, plan_query, select_targets
from hub.queries.releases import sent_digest

NODES = [("ke-a", "404"), ("np-a", "524")]


def spec(**changes: Any) -> QuerySpec:
    fields: dict[str, Any] = {
        "agreement_id": "lnob-2026",
        "dataset": "lnob_household",
        "measure": "count",
        "group_by": ("country", "sex"),
        "rho": 0.2,
    }
    fields.update(changes)
    return QuerySpec(**fields)


def targets() -> list[NodeTarget]:
    key = signing.generate_key()
    return [
        NodeTarget(node_id=n, country=c, url=f"http://{n}", public_jwk=signing.public_jwk(key))
        for n, c in NODES
    ]


def test_allowed_spec_passes() -> None:
    check_spec(spec=spec(), terms=make_terms(NODES), organisation=ANALYST_ORG)


@pytest.mark.parametrize(
    ("changes", "terms_changes", "organisation", "code"),
    [
        ({}, {}, "other", "org_not_permitted"),
        ({}, {"analyst_organisations": ()}, ANALYST_ORG, "org_not_permitted"),
        ({"rho": 0.6}, {}, ANALYST_ORG, "cost_over_cap"),
        ({"dataset": "x"}, {}, ANALYST_ORG, "dataset_not_allowed"),
        ({"group_by": ("sex", "age_band", "district")}, {}, ANALYST_ORG, "too_many_dims"),
        ({"group_by": ("religion",)}, {}, ANALYST_ORG, "dim_not_allowed"),
        (
            {"measure": "share", "column": "income", "value": "high"},
            {},
            ANALYST_ORG,
            "column_not_allowed",
        ),
        ({}, {"measures": ("share",)}, ANALYST_ORG, "measure_not_allowed"),
    ],
)
def test_refusals_have_stable_codes(
    changes: dict[str, Any], terms_changes: dict[str, Any], organisation: str, code: str
) -> None:
    with pytest.raises(HubError) as info:
        check_spec(
            spec=spec(**changes),
            terms=make_terms(NODES, **terms_changes),
            organisation=organisation,
        )
    assert info.value.code == code
    assert "high" not in info.value.message


def test_hub_dims_count_apart_from_data_dims() -> None:
    check_spec(
        spec=spec(group_by=("country", "sex", "node", "age_band")),
        terms=make_terms(NODES),
        organisation=ANALYST_ORG,
    )


def test_node_spec_drops_hub_dims_and_filters() -> None:
    s = spec(
        group_by=("country", "sex", "node"),
        filters=(Filter(column="country", levels=("404",)), Filter(column="sex", levels=("f",))),
    )
    sent = node_spec(s)
    assert sent.group_by == ("sex",)
    assert sent.filters == (Filter(column="sex", levels=("f",)),)


def test_select_targets_by_hub_filters() -> None:
    terms = make_terms(NODES)
    assert [t.node_id for t in select_targets(spec=spec(), terms=terms, nodes=targets())] == [
        "ke-a",
        "np-a",
    ]
    only_nepal = spec(filters=(Filter(column="country", levels=("524",)),))
    assert [t.node_id for t in select_targets(spec=only_nepal, terms=terms, nodes=targets())] == [
        "np-a"
    ]
    nobody = spec(filters=(Filter(column="node", levels=("zz",)),))
    with pytest.raises(HubError) as info:
        select_targets(spec=nobody, terms=terms, nodes=targets())
    assert info.value.code == "no_nodes_selected"


def test_plan_signs_one_request_per_node_with_full_rho() -> None:
    key = signing.generate_key()
    now = datetime.now(UTC)
    terms = make_terms(NODES)
    query_id = uuid4()
    plan = plan_query(
        query_id=query_id,
        spec=spec(),
        terms=terms,
        agreement_digest=signing.digest(terms),
        targets=targets(),
        hub_id="test-hub",
        key=key,
        now=now,
        ttl_seconds=300,
    )
    assert [c.target.node_id for c in plan.calls] == ["ke-a", "np-a"]
    nonces = set()
    for call in plan.calls:
        request = signing.verify_model(call.jws, key, QueryRequest)
        assert request == call.request
        assert request.query_id == query_id
        assert request.node_id == call.target.node_id
        assert request.rho == pytest.approx(0.2)
        assert request.spec.group_by == ("sex",)
        assert request.agreement_digest == signing.digest(terms)
        assert request.expires_at - request.issued_at == timedelta(seconds=300)
        nonces.add(request.nonce)
    assert len(nonces) == 2


def test_each_token_is_the_plain_signature_of_its_request_and_carries_its_digest() -> None:
    """Planning writes the canonical JSON once and splices each node's values in: every token
    is still byte for byte `signing.sign(request, key)` (Ed25519 is deterministic), i.e. what
    the node verifies, and the digest handed to deliveries is `signing.digest(request)`."""
    key = signing.generate_key()
    terms = make_terms(NODES)
    plan = plan_query(
        query_id=uuid4(),
        spec=spec(filters=[Filter(column="sex", levels=("female",))]),
        terms=terms,
        agreement_digest=signing.digest(terms),
        targets=targets(),
        hub_id="test-hub",
        key=key,
        now=datetime.now(UTC),
        ttl_seconds=300,
        analyst="ana",
        analyst_organisation=ANALYST_ORG,
    )
    assert len(plan.calls) == 2
    for call in plan.calls:
        assert call.jws == signing.sign(call.request, key)
        assert call.digest == signing.digest(call.request)
        assert signing.verify_model(call.jws, key, QueryRequest) == call.request


def test_planned_deliveries_take_plain_rows_and_the_planned_digest() -> None:
    """`planned_push_calls` reads Core rows (any object with a node's columns): the previous
    key counts only during its overlap, pull and inactive nodes get no delivery, and each
    delivery's digest is the one of the bytes its token signs."""
    key = signing.generate_key()
    now = datetime.now(UTC)
    terms = make_terms(NODES)
    plan = plan_query(
        query_id=uuid4(),
        spec=spec(),
        terms=terms,
        agreement_digest=signing.digest(terms),
        targets=targets(),
        hub_id="test-hub",
        key=key,
        now=now,
        ttl_seconds=300,
    )
    old, new = signing.public_jwk(signing.generate_key()), signing.public_jwk(key)

    def row(node_id: str, *, until: datetime, mode: str = "push") -> NodeRow:
        return NodeRow(node_id, f"http://{node_id}", mode, "active", "new", new, "old", old, until)

    rows = [row("ke-a", until=now + timedelta(seconds=60)), row("np-a", until=now)]
    calls = planned_push_calls(
        query_id=str(plan.query_id),
        calls=plan.calls,
        nodes=rows,
        contract_version=1,
        deadline=now,
        now=now,
    )
    assert [sorted(c.keys) for c in calls] == [["new", "old"], ["new"]]
    assert [c.request_digest for c in calls] == [sent_digest(c.jws) for c in calls]
    pull = [row("ke-a", until=now, mode="pull")]
    assert (
        planned_push_calls(
            query_id="q", calls=plan.calls, nodes=pull, contract_version=1, deadline=now, now=now
        )
        == ()
    )


class NodeRow(NamedTuple):
    node_id: str
    url: str
    mode: str
    status: str
    kid: str
    public_jwk: dict[str, Any]
    previous_kid: str | None
    previous_jwk: dict[str, Any] | None
    previous_valid_until: datetime | None
