"""Node and agreement routes over HTTP: roles, validation and error bodies."""

from collections.abc import Callable

from hub_support import Hub, SimNode, make_terms


def test_nodes_and_agreements_routes(federation: Hub, sim_nodes: list[SimNode]) -> None:
    client = federation.client
    listed = client.get("/v1/nodes", headers=federation.headers("analyst")).json()
    assert [(n["node_id"], n["country"]) for n in listed] == [
        ("ke-a", "404"),
        ("ke-b", "404"),
        ("np-a", "524"),
    ]
    agreements = client.get("/v1/agreements", headers=federation.headers("auditor")).json()
    assert [(a["agreement"]["terms"]["agreement_id"], a["status"]) for a in agreements] == [
        ("lnob-2026", "active")
    ]
    one = client.get("/v1/agreements/lnob-2026", headers=federation.headers("analyst"))
    assert one.status_code == 200
    assert len(one.json()["agreement"]["signatures"]) == 4
    missing = client.get("/v1/agreements/nope", headers=federation.headers("analyst"))
    assert missing.status_code == 404
    assert missing.json() == {
        "error": {
            "code": "agreement_not_found",
            "message": "no agreement with this id (or version)",
        }
    }
    assert client.get("/v1/nodes").status_code == 401
    assert (
        client.get("/v1/nowhere", headers=federation.headers("admin")).json()["error"]["code"]
        == "not_found"
    )


def test_agreement_checks(federation: Hub, sim_nodes: list[SimNode]) -> None:
    client = federation.client
    sec = federation.headers("secretariat")
    unregistered = make_terms([*sim_nodes, ("zz-node", "050")], agreement_id="other")
    response = client.post("/v1/agreements", json=unregistered.model_dump(mode="json"), headers=sec)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "node_not_registered"
    foreign = make_terms(sim_nodes, agreement_id="other", hub_id="another-hub")
    response = client.post("/v1/agreements", json=foreign.model_dump(mode="json"), headers=sec)
    assert response.json()["error"]["code"] == "hub_mismatch"
    analyst = client.post(
        "/v1/agreements",
        json=make_terms(sim_nodes, agreement_id="x").model_dump(mode="json"),
        headers=federation.headers("analyst"),
    )
    assert analyst.status_code == 403
    bad = make_terms(sim_nodes, agreement_id="other").model_dump(mode="json")
    bad["rho_per_query_max"] = 999.25
    response = client.post("/v1/agreements", json=bad, headers=sec)
    assert response.status_code == 422
    assert "999.25" not in response.text

    current = client.get("/v1/agreements/lnob-2026", headers=sec).json()["agreement"]
    signature = sim_nodes[0].sign_agreement("lnob-2026", 1, current["digest"])
    wrong_path = client.post(
        "/v1/agreements/other/signatures", json=signature.model_dump(mode="json"), headers=sec
    )
    assert wrong_path.status_code == 422
    again = client.post(
        "/v1/agreements/lnob-2026/signatures", json=signature.model_dump(mode="json"), headers=sec
    )
    assert again.status_code == 201
    assert len(again.json()["agreement"]["signatures"]) == 4


def test_proposed_agreement_refuses_queries(
    make_hub: Callable[..., Hub], sim_nodes: list[SimNode]
) -> None:
    hub = make_hub(sim_nodes)
    for node in sim_nodes:
        hub.register(node)
    assert hub.agree(make_terms(sim_nodes), signers=sim_nodes[:1])["status"] == "proposed"
    response = hub.client.post(
        "/v1/queries",
        json={
            "agreement_id": "lnob-2026",
            "dataset": "lnob_household",
            "measure": "count",
            "rho": 0.1,
        },
        headers=hub.headers("analyst"),
    )
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "agreement_not_active"
    assert sum(n.calls for n in sim_nodes) == 0
