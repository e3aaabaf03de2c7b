"""The steward's agreement routes: every route needs a steward token; bad input changes nothing."""

from typing import Any

import pytest

from node.auth import service as auth
from tests.node.conftest import Node, hub_signed, terms

ROUTES = (
    ("GET", "/v1/steward/agreements"),
    ("GET", "/v1/steward/agreements/mou-1"),
    ("GET", "/v1/steward/agreements/mou-1/budget"),
    ("POST", "/v1/steward/agreements/review"),
    ("POST", "/v1/steward/agreements/sign"),
    ("POST", "/v1/steward/agreements/mou-1/suspend"),
    ("POST", "/v1/steward/agreements/mou-1/resume"),
    ("POST", "/v1/steward/agreements/mou-1/revoke"),
    ("POST", "/v1/steward/agreements/report"),
)


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def steward(node: Node) -> dict[str, str]:
    return _bearer(auth.create_token(database_url=node.settings.db_url, name="steward"))


def _body(node: Node, path: str) -> dict[str, Any] | None:
    if path.endswith(("/review", "/sign")):
        agreement = hub_signed(terms(node.identity.node_id, agreement_id="mou-2"), node.hub_key)
        return agreement.model_dump(mode="json")
    return None


def test_every_route_refuses_anonymous_revoked_and_wrong_tokens(node: Node) -> None:
    token = auth.create_token(database_url=node.settings.db_url, name="old")
    auth.revoke_token(database_url=node.settings.db_url, token_id=1)
    for headers in ({}, _bearer("sauti_node_wrong"), _bearer(token)):
        for method, path in ROUTES:
            response = node.client.request(method, path, headers=headers, json=_body(node, path))
            assert response.status_code == 401, (method, path, response.text)
            assert response.json()["error"]["code"] == "unauthenticated"
    # Nothing changed: the agreement is still honoured.
    assert node.post(node.request()).status_code == 200


def test_steward_flow(node: Node, steward: dict[str, str]) -> None:
    client = node.client
    listed = client.request("GET", "/v1/steward/agreements", headers=steward)
    assert [a["agreement_id"] for a in listed.json()] == ["mou-1"]
    body = _body(node, "/sign")
    review = client.post("/v1/steward/agreements/review", json=body, headers=steward)
    assert review.status_code == 200, review.text
    assert "WHO MAY ASK" in review.json()["summary"]
    signed = client.post("/v1/steward/agreements/sign", json=body, headers=steward)
    assert signed.status_code == 201
    assert signed.json()["signer"] == node.identity.node_id
    assert node.post(node.request()).status_code == 200
    suspended = client.post(
        "/v1/steward/agreements/mou-1/suspend", json={"reason": "audit"}, headers=steward
    )
    assert suspended.json()["status"] == "suspended"
    assert suspended.json()["report"]["pending"] == 1  # no hub URL pinned: kept for later
    assert node.post(node.request()).json()["error"]["code"] == "agreement_suspended"
    resumed = client.post("/v1/steward/agreements/mou-1/resume", headers=steward)
    assert resumed.json()["status"] == "active"
    budget = client.request("GET", "/v1/steward/agreements/mou-1/budget", headers=steward)
    assert budget.json()["line"]["queries"] == 1
    assert [c["requested_by"] for c in budget.json()["charges"]] == ["analyst"]
    revoked = client.post("/v1/steward/agreements/mou-1/revoke", headers=steward)
    assert revoked.json()["status"] == "revoked"
    assert node.post(node.request()).json()["error"]["code"] == "agreement_revoked"
    final = client.post("/v1/steward/agreements/mou-1/resume", headers=steward)
    assert (final.status_code, final.json()["error"]["code"]) == (403, "agreement_revoked")
    report = client.post("/v1/steward/agreements/report", headers=steward)
    # Two signatures (the fixture's and this one) and three notices; no hub URL is pinned.
    assert report.json()["pending"] == 5


def test_bad_input_is_refused_with_a_code_and_changes_nothing(
    node: Node, steward: dict[str, str]
) -> None:
    client = node.client
    before = client.request("GET", "/v1/steward/agreements", headers=steward).json()
    good = _body(node, "/sign")
    assert good is not None
    cases: list[tuple[str, Any, int, str]] = [
        ("/sign", {"terms": {"agreement_id": "x"}}, 422, "invalid_request"),
        ("/sign", good | {"digest": "0" * 64}, 422, "agreement_invalid"),
        ("/sign", {**good, "terms": {**good["terms"], "rho_budget": -1}}, 422, "invalid_request"),
        (
            "/sign",
            {**good, "terms": {**good["terms"], "valid_until": good["terms"]["valid_from"]}},
            422,
            "invalid_request",
        ),
        (
            "/sign",
            hub_signed(
                terms(node.identity.node_id, agreement_id="mou-2", dims=("caste",)), node.hub_key
            ).model_dump(mode="json"),
            422,
            "term_not_in_contract",
        ),
        (
            "/review",
            hub_signed(terms(node.identity.node_id, agreement_id="mou-2"), node.hub_key).model_dump(
                mode="json"
            )
            | {"signatures": []},
            422,
            "agreement_invalid",
        ),
        ("/mou-1/suspend", {"reason": "x" * 501}, 422, "invalid_request"),
        ("/nope/suspend", None, 403, "agreement_unknown"),
    ]
    for path, body, status, code in cases:
        response = client.post(f"/v1/steward/agreements{path}", json=body, headers=steward)
        assert (response.status_code, response.json()["error"]["code"]) == (status, code), path
        assert "-1" not in response.json()["error"]["message"]
    unknown = client.request("GET", "/v1/steward/agreements/nope/budget", headers=steward)
    assert unknown.json()["error"]["code"] == "agreement_unknown"
    assert client.request("GET", "/v1/steward/agreements", headers=steward).json() == before
    assert node.post(node.request()).status_code == 200
