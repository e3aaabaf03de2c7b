"""Every agreements endpoint × every role, and bad input that must change nothing."""

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.routing import APIRoute
from hub_support import Hub, SimNode, make_terms

from contracts import signing
from contracts.v1 import AgreementFetch, AgreementNotice, AgreementSignature, SignatureDelivery
from hub.agreements.router import router

ROLES = ("admin", "secretariat", "analyst", "outsider", "auditor", "anonymous")
WRITERS = {"admin", "secretariat"}
READERS = {"admin", "secretariat", "auditor", "analyst"}  # analyst: org named in the terms
ANY = set(ROLES)


@dataclass(frozen=True)
class Call:
    method: str
    route: str  # the route's path template, to check that no route is left out
    url: str
    allowed: set[str]
    body: Callable[[Hub, list[SimNode]], Any] | None = None


def _v2(hub: Hub, nodes: list[SimNode]) -> Any:
    return make_terms(nodes, version=2, rho_budget=4.0).model_dump(mode="json")


def _signature(hub: Hub, nodes: list[SimNode]) -> Any:
    digest = hub.client.get(
        "/v1/agreements/lnob-2026/versions/1", headers=hub.headers("admin")
    ).json()
    return (
        nodes[0]
        .sign_agreement("lnob-2026", 1, digest["agreement"]["digest"])
        .model_dump(mode="json")
    )


def _notice(hub: Hub, nodes: list[SimNode]) -> Any:
    notice = AgreementNotice(
        agreement_id="lnob-2026", node_id="ke-b", status="suspended", at=datetime.now(UTC)
    )
    return {"jws": signing.sign(notice, nodes[1].key)}


def _fetch(hub: Hub, nodes: list[SimNode]) -> Any:
    fetch = AgreementFetch(
        agreement_id="lnob-2026",
        node_id="ke-a",
        hub_id=hub.identity.hub_id,
        issued_at=datetime.now(UTC),
        nonce=secrets.token_hex(16),
    )
    return {"jws": signing.sign(fetch, nodes[0].key)}


def _delivery(hub: Hub, nodes: list[SimNode]) -> Any:
    delivery = SignatureDelivery(
        hub_id=hub.identity.hub_id,
        node_id="ke-a",
        signature=AgreementSignature.model_validate(_signature(hub, nodes)),
        issued_at=datetime.now(UTC),
        nonce=secrets.token_hex(16),
    )
    return {"jws": signing.sign(delivery, nodes[0].key)}


def _other(hub: Hub, nodes: list[SimNode]) -> Any:
    return make_terms(nodes, agreement_id="other").model_dump(mode="json")


# In an order in which every call is valid when allowed (revocation last: it is final).
CALLS = (
    Call("GET", "/v1/agreements", "/v1/agreements", ANY - {"anonymous"}),
    Call("GET", "/v1/agreements/{agreement_id}", "/v1/agreements/lnob-2026", READERS),
    Call(
        "GET",
        "/v1/agreements/{agreement_id}/versions",
        "/v1/agreements/lnob-2026/versions",
        READERS,
    ),
    Call(
        "GET",
        "/v1/agreements/{agreement_id}/versions/{version}",
        "/v1/agreements/lnob-2026/versions/1",
        READERS,
    ),
    Call(
        "GET",
        "/v1/agreements/{agreement_id}/document.html",
        "/v1/agreements/lnob-2026/document.html",
        READERS,
    ),
    Call(
        "GET",
        "/v1/agreements/{agreement_id}/document.pdf",
        "/v1/agreements/lnob-2026/document.pdf",
        READERS,
    ),
    Call("POST", "/v1/agreements", "/v1/agreements", WRITERS, _other),
    Call("POST", "/v1/agreements/drafts", "/v1/agreements/drafts", WRITERS, _v2),
    Call(
        "PUT",
        "/v1/agreements/{agreement_id}/versions/{version}",
        "/v1/agreements/lnob-2026/versions/2",
        WRITERS,
        _v2,
    ),
    Call(
        "POST",
        "/v1/agreements/{agreement_id}/versions/{version}/propose",
        "/v1/agreements/lnob-2026/versions/2/propose",
        WRITERS,
    ),
    # Node-signed: the node's key is the authority, whoever delivers the message.
    Call(
        "POST",
        "/v1/agreements/{agreement_id}/signatures",
        "/v1/agreements/lnob-2026/signatures",
        ANY,
        _signature,
    ),
    Call(
        "POST",
        "/v1/agreements/{agreement_id}/notices",
        "/v1/agreements/lnob-2026/notices",
        ANY,
        _notice,
    ),
    Call("POST", "/v1/agreements/fetch", "/v1/agreements/fetch", ANY, _fetch),
    Call(
        "POST",
        "/v1/agreements/signatures/deliver",
        "/v1/agreements/signatures/deliver",
        ANY,
        _delivery,
    ),
    Call(
        "POST", "/v1/agreements/{agreement_id}/suspend", "/v1/agreements/lnob-2026/suspend", WRITERS
    ),
    Call(
        "POST", "/v1/agreements/{agreement_id}/resume", "/v1/agreements/lnob-2026/resume", WRITERS
    ),
    Call(
        "POST", "/v1/agreements/{agreement_id}/revoke", "/v1/agreements/lnob-2026/revoke", WRITERS
    ),
)


def test_the_matrix_covers_every_agreements_route() -> None:
    routes = {
        (method, route.path)
        for route in router.routes
        if isinstance(route, APIRoute)
        for method in route.methods
    }
    assert routes == {(c.method, c.route) for c in CALLS}


@pytest.mark.parametrize("role", ROLES)
def test_every_endpoint_for_every_role(
    role: str, federation: Hub, sim_nodes: list[SimNode]
) -> None:
    hub = federation
    headers = {} if role == "anonymous" else hub.headers(role)
    for call in CALLS:
        before = hub.client.get("/v1/agreements/lnob-2026/versions", headers=hub.headers("admin"))
        body = call.body(hub, sim_nodes) if call.body is not None else None
        kwargs: dict[str, Any] = {"headers": headers}
        if body is not None:
            kwargs["json"] = body
        response = hub.client.request(call.method, call.url, **kwargs)
        where = f"{role} {call.method} {call.url}: {response.status_code} {response.text[:200]}"
        if role in call.allowed:
            assert response.status_code < 300, where
            continue
        if role == "anonymous":
            assert response.status_code == 401, where
            assert response.json()["error"]["code"] == "unauthenticated", where
        elif role == "outsider" and call.method == "GET":
            # An analyst of an organisation the agreement does not name learns nothing of it.
            assert response.status_code == 404, where
            assert response.json()["error"]["code"] == "agreement_not_found", where
        else:
            assert response.status_code == 403, where
            assert response.json()["error"]["code"] == "forbidden", where
        after = hub.client.get("/v1/agreements/lnob-2026/versions", headers=hub.headers("admin"))
        assert before.json() == after.json(), where
    if role == "outsider":
        listed = hub.client.get("/v1/agreements", headers=headers)
        assert listed.json() == []


def _versions(hub: Hub) -> Any:
    return hub.client.get("/v1/agreements/lnob-2026/versions", headers=hub.headers("admin")).json()


def _all(hub: Hub) -> Any:
    return hub.client.get("/v1/agreements", headers=hub.headers("admin")).json()


@pytest.mark.parametrize(
    ("mutate", "code", "status"),
    [
        (lambda t: {k: v for k, v in t.items() if k != "parties"}, "invalid_request", 422),
        (lambda t: t | {"measures": "count"}, "invalid_request", 422),
        (lambda t: t | {"rho_budget": -1.0}, "invalid_request", 422),
        (lambda t: t | {"rho_per_query_max": 0}, "invalid_request", 422),
        (lambda t: t | {"valid_until": t["valid_from"]}, "invalid_request", 422),
        (
            lambda t: (
                t | {"valid_until": "2020-01-01T00:00:00Z", "valid_from": "2021-01-01T00:00:00Z"}
            ),
            "invalid_request",
            422,
        ),
        (lambda t: t | {"parties": [*t["parties"], t["parties"][1]]}, "invalid_request", 422),
        (lambda t: t | {"budget_period": "fortnight"}, "invalid_request", 422),
        (lambda t: t | {"dims": ["sex", "sex"]}, "invalid_request", 422),
        (lambda t: t | {"unexpected": 1}, "invalid_request", 422),
        (lambda t: t | {"hub_id": "another-hub"}, "hub_mismatch", 422),
        (lambda t: t | {"version": 1}, "agreement_version_exists", 409),
    ],
)
def test_bad_terms_are_refused_and_change_nothing(
    federation: Hub, sim_nodes: list[SimNode], mutate: Callable[[Any], Any], code: str, status: int
) -> None:
    hub = federation
    before = _all(hub), _versions(hub)
    terms = make_terms(sim_nodes, version=2).model_dump(mode="json")
    for url in ("/v1/agreements/drafts", "/v1/agreements"):
        response = hub.client.post(url, json=mutate(terms), headers=hub.headers("secretariat"))
        assert response.status_code == status, response.text
        assert response.json()["error"]["code"] == code
        assert "-1.0" not in response.json()["error"]["message"]
    assert (_all(hub), _versions(hub)) == before


def test_signatures_by_the_wrong_key_are_refused(federation: Hub, sim_nodes: list[SimNode]) -> None:
    hub = federation
    sec = hub.headers("secretariat")
    hub.client.post(
        "/v1/agreements",
        json=make_terms(sim_nodes, version=2).model_dump(mode="json"),
        headers=sec,
    )
    before = _versions(hub)
    digest = before[-1]["agreement"]["digest"]
    impostor = SimNode(node_id="ke-a", country="404", hub_key=hub.identity.public_jwk)
    url = "/v1/agreements/lnob-2026/signatures"
    wrong_key = impostor.sign_agreement("lnob-2026", 2, digest)
    response = hub.client.post(url, json=wrong_key.model_dump(mode="json"))
    assert (response.status_code, response.json()["error"]["code"]) == (422, "signature_invalid")
    # ke-b's valid signature presented as ke-a's.
    swapped = (
        sim_nodes[1].sign_agreement("lnob-2026", 2, digest).model_copy(update={"signer": "ke-a"})
    )
    response = hub.client.post(url, json=swapped.model_dump(mode="json"))
    assert response.status_code == 422
    # A valid signature over another digest (terms the node never saw).
    other = sim_nodes[0].sign_agreement("lnob-2026", 2, "f" * 64)
    response = hub.client.post(url, json=other.model_dump(mode="json"))
    assert response.json()["error"]["code"] == "digest_mismatch"
    response = hub.client.post(url, json={"signer": "ke-a"})
    assert response.json()["error"]["code"] == "invalid_request"
    response = hub.client.post("/v1/agreements/lnob-2026/notices", json={"jws": "x" * 20})
    assert response.status_code == 401
    stale = AgreementNotice(
        agreement_id="lnob-2026",
        node_id="ke-a",
        status="revoked",
        at=datetime.now(UTC) - timedelta(days=1),
    )
    response = hub.client.post(
        "/v1/agreements/lnob-2026/notices", json={"jws": signing.sign(stale, impostor.key)}
    )
    assert response.status_code == 401
    assert _versions(hub) == before
    bad_version = hub.client.get("/v1/agreements/lnob-2026/document.html?version=0", headers=sec)
    assert bad_version.json()["error"]["code"] == "invalid_request"
