"""Queries through the hub API against simulated nodes: checks, fan-out, retries, combination."""

from typing import Any

import pytest
from hub_support import Hub

SPEC: dict[str, Any] = {
    "agreement_id": "lnob-2026",
    "dataset": "lnob_household",
    "measure": "count",
    "group_by": ["sex"],
    "rho": 0.2,
}


def post(hub: Hub, who: str = "analyst", **changes: Any) -> Any:
    return hub.client.post("/v1/queries", json={**SPEC, **changes}, headers=hub.headers(who))


def total_calls(hub: Hub) -> int:
    return sum(n.calls for n in hub.nodes.values())


def test_count_sums_nodes_and_is_stored(federation: Hub) -> None:
    response = post(federation)
    assert response.status_code == 201, response.text
    result = response.json()
    assert result["status"] == "complete"
    cells = {tuple(c["key"]): c for c in result["cells"]}
    assert cells[("female",)]["estimate"] == pytest.approx(180.0)
    assert cells[("male",)]["estimate"] == pytest.approx(140.0)
    assert sorted(cells[("female",)]["nodes"]) == ["ke-a", "ke-b", "np-a"]
    # Nodes never see hub dims and each spends the full rho (parallel composition).
    for node in federation.nodes.values():
        assert node.requests[0].spec.group_by == ("sex",)
        assert node.requests[0].rho == pytest.approx(0.2)
    stored = federation.client.get(
        f"/v1/queries/{result['query_id']}", headers=federation.headers("analyst")
    )
    assert stored.status_code == 200
    assert stored.json() == result
    # Reading a completed result is logged for auditors: who saw which numbers.
    viewed = federation.client.get(
        "/v1/audit/entries",
        params={"action": "result.viewed"},
        headers=federation.headers("auditor"),
    )
    assert viewed.status_code == 200, viewed.text
    entries = viewed.json()
    entries = entries.get("entries", entries) if isinstance(entries, dict) else entries
    assert [e["object"] for e in entries] == [f"query:{result['query_id']}"]
    listed = federation.client.get("/v1/queries", headers=federation.headers("analyst")).json()
    assert [q["query_id"] for q in listed] == [result["query_id"]]


def test_hub_dims_split_by_country_in_analyst_order(federation: Hub) -> None:
    response = post(federation, group_by=["sex", "country"])
    assert response.status_code == 201, response.text
    result = response.json()
    cells = {tuple(c["key"]): c["estimate"] for c in result["cells"]}
    assert cells == {
        ("female", "404"): pytest.approx(150.0),
        ("male", "404"): pytest.approx(120.0),
        ("female", "524"): pytest.approx(30.0),
        ("male", "524"): pytest.approx(20.0),
    }
    for node in federation.nodes.values():
        assert node.requests[0].spec.group_by == ("sex",)


def test_filter_on_country_asks_only_those_nodes(federation: Hub) -> None:
    response = post(federation, filters=[{"column": "country", "levels": ["524"]}])
    assert response.status_code == 201, response.text
    assert [n["node_id"] for n in response.json()["nodes"]] == ["np-a"]
    assert federation.nodes["ke-a"].calls == 0


def test_split_by_node(federation: Hub) -> None:
    result = post(federation, group_by=["node"]).json()
    assert {tuple(c["key"]) for c in result["cells"]} == {("ke-a",), ("ke-b",), ("np-a",)}


def test_retries_5xx_and_timeouts_with_the_same_request(federation: Hub) -> None:
    federation.nodes["ke-a"].script = ["503", "timeout"]
    result = post(federation).json()
    assert result["status"] == "complete"
    assert federation.nodes["ke-a"].calls == 3


def test_refusal_timeout_and_bad_signature_are_never_imputed(federation: Hub) -> None:
    federation.nodes["ke-a"].script = ["refuse"]
    federation.nodes["ke-b"].script = ["timeout", "timeout", "timeout"]
    federation.nodes["np-a"].script = ["bad_signature"]
    result = post(federation).json()
    outcomes = {n["node_id"]: (n["outcome"], n["error_code"]) for n in result["nodes"]}
    assert outcomes == {
        "ke-a": ("refused", "budget_exhausted"),
        "ke-b": ("timeout", "node_timeout"),
        "np-a": ("failed", "release_invalid"),
    }
    assert result["status"] == "failed"
    assert result["cells"] == []


def test_release_for_another_node_is_rejected_and_result_partial(federation: Hub) -> None:
    federation.nodes["np-a"].script = ["wrong_node"]
    result = post(federation).json()
    assert result["status"] == "partial"
    cells = {tuple(c["key"]): c for c in result["cells"]}
    assert cells[("female",)]["estimate"] == pytest.approx(150.0)
    assert sorted(cells[("female",)]["nodes"]) == ["ke-a", "ke-b"]


@pytest.mark.parametrize(
    ("changes", "status", "code"),
    [
        ({"agreement_id": "no-such"}, 404, "agreement_not_found"),
        ({"rho": 0.9}, 403, "cost_over_cap"),
        ({"measure": "mean", "column": "disability"}, 422, "measure_not_allowed"),
        ({"dataset": "other"}, 422, "dataset_not_allowed"),
        ({"group_by": ["religion"]}, 422, "dim_not_allowed"),
        ({"group_by": ["sex", "age_band", "group"]}, 422, "too_many_dims"),
        ({"column": "name"}, 422, "column_not_allowed"),
        ({"filters": [{"column": "caste", "levels": ["dalit"]}]}, 422, "dim_not_allowed"),
    ],
)
def test_refusals_before_any_node_is_contacted(
    federation: Hub, changes: dict[str, Any], status: int, code: str
) -> None:
    response = post(federation, **changes)
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    assert total_calls(federation) == 0


def test_other_org_is_not_permitted(federation: Hub) -> None:
    response = post(federation, who="outsider")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "org_not_permitted"
    assert total_calls(federation) == 0


def test_bad_spec_is_422_naming_fields_not_values(federation: Hub) -> None:
    response = post(federation, measure="share", column="violence_12m", rho=77.5, secret="xyzzy")
    assert response.status_code == 422
    body = response.json()
    assert body["error"]["code"] == "invalid_request"
    assert "rho" in body["error"]["message"]
    for value in ("77.5", "xyzzy", "violence_12m"):
        assert value not in response.text
    assert total_calls(federation) == 0


def test_filter_level_is_not_echoed_in_refusals(federation: Hub) -> None:
    response = post(federation, filters=[{"column": "religion", "levels": ["secret-level"]}])
    assert response.status_code == 422
    assert "secret-level" not in response.text


def test_auth_roles_and_orgs(federation: Hub) -> None:
    client = federation.client
    assert client.post("/v1/queries", json=SPEC).status_code == 401
    unknown = client.post("/v1/queries", json=SPEC, headers={"Authorization": "Bearer nope"})
    assert unknown.status_code == 401
    assert unknown.json()["error"]["code"] == "unauthenticated"
    wrong_role = post(federation, who="secretariat")
    assert wrong_role.status_code == 403
    assert wrong_role.json()["error"]["code"] == "forbidden"
    assert total_calls(federation) == 0
    query_id = post(federation).json()["query_id"]
    other = client.get(f"/v1/queries/{query_id}", headers=federation.headers("outsider"))
    assert other.status_code == 403
    assert other.json()["error"]["code"] == "forbidden"
    assert client.get("/v1/queries", headers=federation.headers("outsider")).json() == []
    auditor = client.get(f"/v1/queries/{query_id}", headers=federation.headers("auditor"))
    assert auditor.status_code == 200
    missing = client.get(
        "/v1/queries/00000000-0000-4000-8000-000000000000", headers=federation.headers("analyst")
    )
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "query_not_found"
    analyst_nodes = client.post(
        "/v1/nodes", json={"node_id": "x"}, headers=federation.headers("analyst")
    )
    assert analyst_nodes.status_code == 403


def test_persistent_5xx_and_garbage_fail_without_leaking(federation: Hub) -> None:
    federation.nodes["ke-a"].script = ["503", "503", "503"]
    federation.nodes["ke-b"].script = ["garbage"]
    result = post(federation).json()
    outcomes = {n["node_id"]: (n["outcome"], n["error_code"]) for n in result["nodes"]}
    # A 5xx keeps the node's own code when it sends one (a node's `release_failed`, ...).
    assert outcomes["ke-a"] == ("failed", "busy")
    assert outcomes["ke-b"] == ("failed", "release_invalid")
    assert federation.nodes["ke-a"].calls == 3  # first try + node_retries
    assert result["status"] == "partial"
    assert "html" not in str(result)


def test_query_routes_check_the_token_every_request(federation: Hub) -> None:
    """The query routes check the caller in the hop that does their work: a token revoked
    between two requests is refused on the next one (read each time, never cached), the role
    is checked, and refusals keep their order."""
    first = post(federation)
    assert first.status_code == 201, first.text
    query_id = first.json()["query_id"]
    assert post(federation, who="auditor").status_code == 403  # no analyst role
    # Refusals in CurrentUser's order: the caller before the body and parameters...
    nope = {"Authorization": "Bearer nope"}
    invalid = {"json": {"not": "a spec"}}
    for who, expected in ((nope, 401), (federation.headers("auditor"), 403), ({}, 401)):
        refused = federation.client.post("/v1/queries?wait=-1", headers=who, **invalid)
        assert refused.status_code == expected, refused.text
    refused = federation.client.post(
        "/v1/queries", headers=federation.headers("analyst"), **invalid
    )
    assert refused.status_code == 422
    for who, expected in ((nope, 401), (federation.headers("analyst"), 422)):
        refused = federation.client.get("/v1/queries/not-a-uuid?wait=-1", headers=who)
        assert refused.status_code == expected, refused.text
    # ... and a body that is not JSON, or control characters, before the caller.
    refused = federation.client.post(
        "/v1/queries", content=b"{not json", headers={**nope, "content-type": "application/json"}
    )
    assert (refused.status_code, refused.json()["error"]["code"]) == (422, "invalid_request")
    refused = federation.client.post(
        "/v1/queries", json={**SPEC, "dataset": "a\x00b"}, headers=nope
    )
    assert (refused.status_code, refused.json()["error"]["code"]) == (422, "invalid_request")
    admin = federation.headers("admin")
    tokens = federation.client.get("/v1/tokens", headers=admin).json()
    (analyst,) = [t for t in tokens if t["name"] == "ana"]
    revoked = federation.client.request(
        "DELETE", f"/v1/tokens/{analyst['token_id']}", headers=admin
    )
    assert revoked.status_code == 200, revoked.text
    calls = total_calls(federation)
    again = post(federation)
    assert again.status_code == 401
    assert again.json()["error"]["code"] == "token_revoked"
    assert total_calls(federation) == calls  # nothing sent
    read = federation.client.get(f"/v1/queries/{query_id}", headers=federation.headers("analyst"))
    assert read.status_code == 401
    assert read.json()["error"]["code"] == "token_revoked"
