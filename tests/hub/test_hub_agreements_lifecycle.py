"""The MoU lifecycle at the hub: draft, propose, sign, amend, node notices, suspend, revoke."""

import io
import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from hub_support import Hub, SimNode, make_terms
from pypdf import PdfReader

from contracts import signing
from contracts.v1 import AgreementFetch, AgreementNotice, AgreementTerms


def _terms_json(terms: AgreementTerms) -> dict[str, Any]:
    return terms.model_dump(mode="json")


def _registered(make_hub: Callable[..., Hub], nodes: list[SimNode]) -> Hub:
    hub = make_hub(nodes)
    for node in nodes:
        hub.register(node)
    return hub


def _sign_all(hub: Hub, nodes: list[SimNode], agreement_id: str, version: int) -> dict[str, Any]:
    read = hub.client.get(
        f"/v1/agreements/{agreement_id}/versions/{version}", headers=hub.headers("secretariat")
    ).json()
    body: dict[str, Any] = read
    for node in nodes:
        sig = node.sign_agreement(agreement_id, version, read["agreement"]["digest"])
        response = hub.client.post(
            f"/v1/agreements/{agreement_id}/signatures", json=sig.model_dump(mode="json")
        )
        assert response.status_code == 201, response.text
        body = response.json()
    return body


def _notice(node: SimNode, status: str, *, at: datetime, agreement_id: str = "lnob-2026") -> str:
    notice = AgreementNotice(
        agreement_id=agreement_id, node_id=node.node_id, status=status, at=at, reason="steward"
    )
    return signing.sign(notice, node.key)


def test_draft_propose_sign_activate(
    make_hub: Callable[..., Hub], sim_nodes: list[SimNode]
) -> None:
    hub = _registered(make_hub, sim_nodes)
    sec = hub.headers("secretariat")
    terms = make_terms(sim_nodes)
    draft = hub.client.post("/v1/agreements/drafts", json=_terms_json(terms), headers=sec)
    assert draft.status_code == 201, draft.text
    assert draft.json()["status"] == "draft"
    assert draft.json()["agreement"]["signatures"] == []
    # Analysts never see drafts, even those naming their organisation.
    assert hub.client.get("/v1/agreements", headers=hub.headers("analyst")).json() == []

    # A node cannot sign a draft: its text may still change.
    sig = sim_nodes[0].sign_agreement("lnob-2026", 1, draft.json()["agreement"]["digest"])
    refused = hub.client.post(
        "/v1/agreements/lnob-2026/signatures", json=sig.model_dump(mode="json")
    )
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "agreement_not_proposed"

    edited = make_terms(sim_nodes, rho_budget=4.0)
    updated = hub.client.request(
        "PUT", "/v1/agreements/lnob-2026/versions/1", json=_terms_json(edited), headers=sec
    )
    assert updated.status_code == 200, updated.text
    assert updated.json()["agreement"]["digest"] == signing.digest(edited)

    proposed = hub.client.post("/v1/agreements/lnob-2026/versions/1/propose", headers=sec)
    assert proposed.status_code == 200
    assert proposed.json()["status"] == "proposed"
    assert set(proposed.json()["missing_signers"]) == {n.node_id for n in sim_nodes}
    again = hub.client.request(
        "PUT", "/v1/agreements/lnob-2026/versions/1", json=_terms_json(edited), headers=sec
    )
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "agreement_not_draft"

    active = _sign_all(hub, sim_nodes, "lnob-2026", 1)
    assert active["status"] == "active"
    assert [s["signer"] for s in active["signers"]] == ["test-hub", "ke-a", "ke-b", "np-a"]
    assert all(len(s["kid"]) >= 40 for s in active["signers"])
    seen = hub.client.get("/v1/agreements", headers=hub.headers("analyst")).json()
    assert [a["agreement"]["terms"]["agreement_id"] for a in seen] == ["lnob-2026"]
    assert hub.client.get("/v1/agreements", headers=hub.headers("outsider")).json() == []


def test_amendment_is_a_new_version_and_old_ones_stay_readable(
    federation: Hub, sim_nodes: list[SimNode]
) -> None:
    hub = federation
    sec = hub.headers("secretariat")
    v1 = hub.client.get("/v1/agreements/lnob-2026", headers=sec).json()
    amended = make_terms(sim_nodes, version=2, rho_per_query_max=0.25)
    gap = make_terms(sim_nodes, version=3)
    response = hub.client.post("/v1/agreements/drafts", json=_terms_json(gap), headers=sec)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "version_not_next"
    wrong = _terms_json(amended) | {"amends_digest": "0" * 64}
    response = hub.client.post("/v1/agreements/drafts", json=wrong, headers=sec)
    assert response.json()["error"]["code"] == "amends_mismatch"
    draft = hub.client.post("/v1/agreements/drafts", json=_terms_json(amended), headers=sec)
    assert draft.status_code == 201
    # The hub chains the amendment to the version it amends.
    assert draft.json()["agreement"]["terms"]["amends_digest"] == v1["agreement"]["digest"]
    assert draft.json()["agreement"]["digest"] != v1["agreement"]["digest"]
    hub.client.post("/v1/agreements/lnob-2026/versions/2/propose", headers=sec)
    # Until every party signed v2, v1 stays the one in force.
    assert (
        hub.client.get("/v1/agreements/lnob-2026/versions/1", headers=sec).json()["status"]
        == "active"
    )
    _sign_all(hub, sim_nodes, "lnob-2026", 2)
    versions = hub.client.get("/v1/agreements/lnob-2026/versions", headers=sec).json()
    assert [(v["agreement"]["terms"]["version"], v["status"]) for v in versions] == [
        (1, "superseded"),
        (2, "active"),
    ]
    # Queries now run under v2, and the hub accounts spending per version.
    spec = {
        "agreement_id": "lnob-2026",
        "dataset": "lnob_household",
        "measure": "count",
        "rho": 0.2,
    }
    assert (
        hub.client.post("/v1/queries", json=spec, headers=hub.headers("analyst")).status_code == 201
    )
    assert {r.agreement_version for n in sim_nodes for r in n.requests} == {2}
    versions = hub.client.get("/v1/agreements/lnob-2026/versions", headers=sec).json()
    # The budget is the agreement's, amendments included (as each node's ledger counts it):
    # every version shows what the nodes reported they spent this period.
    assert [v["rho_spent_at_hub"] for v in versions] == ["0.2", "0.2"]
    assert versions[-1]["rho_spent_by_node"] == {n.node_id: "0.2" for n in sim_nodes}


def test_node_notices_record_each_partys_standing(
    federation: Hub, sim_nodes: list[SimNode]
) -> None:
    hub = federation
    now = datetime.now(UTC)
    url = "/v1/agreements/lnob-2026/notices"
    response = hub.client.post(url, json={"jws": _notice(sim_nodes[0], "suspended", at=now)})
    assert response.status_code == 200, response.text
    assert [(s["party"], s["status"]) for s in response.json()["standings"]] == [
        ("ke-a", "suspended")
    ]
    # The other nodes still answer: the agreement itself stays active at the hub.
    assert response.json()["status"] == "active"
    # An older notice (a replay, or one overtaken in transit) changes nothing.
    old = _notice(sim_nodes[0], "active", at=now - timedelta(minutes=5))
    assert hub.client.post(url, json={"jws": old}).json()["standings"][0]["status"] == "suspended"
    revoked = _notice(sim_nodes[0], "revoked", at=now + timedelta(seconds=1))
    assert hub.client.post(url, json={"jws": revoked}).json()["standings"][0]["status"] == "revoked"
    later = _notice(sim_nodes[0], "active", at=now + timedelta(seconds=2))
    assert hub.client.post(url, json={"jws": later}).json()["standings"][0]["status"] == "revoked"

    stranger = SimNode(node_id="zz", country="050", hub_key=hub.identity.public_jwk)
    forged = signing.sign(
        AgreementNotice(agreement_id="lnob-2026", node_id="ke-b", status="revoked", at=now),
        stranger.key,
    )
    response = hub.client.post(url, json={"jws": forged})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "node_signature_invalid"
    hub.register(stranger)
    outsider = _notice(stranger, "revoked", at=now)
    response = hub.client.post(url, json={"jws": outsider})
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "not_a_party"
    other = _notice(sim_nodes[1], "revoked", at=now, agreement_id="other")
    assert hub.client.post(url, json={"jws": other}).json()["error"]["code"] == "notice_invalid"
    versions = hub.client.get("/v1/agreements/lnob-2026", headers=hub.headers("auditor")).json()
    assert [s["party"] for s in versions["standings"]] == ["ke-a"]


def test_secretariat_suspends_resumes_and_revokes(federation: Hub) -> None:
    hub = federation
    sec = hub.headers("secretariat")
    spec = {
        "agreement_id": "lnob-2026",
        "dataset": "lnob_household",
        "measure": "count",
        "rho": 0.1,
    }
    suspended = hub.client.post(
        "/v1/agreements/lnob-2026/suspend", json={"reason": "review"}, headers=sec
    )
    assert suspended.json()["status"] == "suspended"
    refused = hub.client.post("/v1/queries", json=spec, headers=hub.headers("analyst"))
    assert refused.json()["error"]["code"] == "agreement_not_active"
    assert (
        hub.client.post("/v1/agreements/lnob-2026/resume", headers=sec).json()["status"] == "active"
    )
    assert (
        hub.client.post("/v1/queries", json=spec, headers=hub.headers("analyst")).status_code == 201
    )
    assert (
        hub.client.post("/v1/agreements/lnob-2026/revoke", headers=sec).json()["status"]
        == "revoked"
    )
    final = hub.client.post("/v1/agreements/lnob-2026/resume", headers=sec)
    assert final.status_code == 409
    assert final.json()["error"]["code"] == "agreement_revoked"
    amendment = make_terms(list(hub.nodes.values()), version=2)
    response = hub.client.post("/v1/agreements/drafts", json=_terms_json(amendment), headers=sec)
    assert response.json()["error"]["code"] == "agreement_revoked"


def test_node_fetches_the_version_to_sign(federation: Hub, sim_nodes: list[SimNode]) -> None:
    hub = federation
    fetch = AgreementFetch(
        agreement_id="lnob-2026",
        node_id="ke-a",
        hub_id=hub.identity.hub_id,
        issued_at=datetime.now(UTC),
        nonce=secrets.token_hex(16),
    )
    token = signing.sign(fetch, sim_nodes[0].key)
    response = hub.client.post("/v1/agreements/fetch", json={"jws": token})
    assert response.status_code == 200, response.text
    assert response.json()["terms"]["agreement_id"] == "lnob-2026"
    replay = hub.client.post("/v1/agreements/fetch", json={"jws": token})
    assert replay.status_code == 409
    assert replay.json()["error"]["code"] == "replayed"
    stale = fetch.model_copy(update={"issued_at": datetime.now(UTC) - timedelta(hours=2)})
    response = hub.client.post(
        "/v1/agreements/fetch", json={"jws": signing.sign(stale, sim_nodes[0].key)}
    )
    assert response.json()["error"]["code"] == "message_stale"


def test_printable_mou_html_and_pdf(federation: Hub, sim_nodes: list[SimNode]) -> None:
    hub = federation
    read = hub.client.get("/v1/agreements/lnob-2026", headers=hub.headers("auditor")).json()
    html = hub.client.get("/v1/agreements/lnob-2026/document.html", headers=hub.headers("analyst"))
    assert html.status_code == 200
    assert html.headers["content-type"].startswith("text/html")
    page = html.text
    for expected in (
        "LNOB data sharing",
        "SDG monitoring",
        "CSO ke-a",
        "lnob_household, contract version 1",
        "A cell is withheld when its noisy count is below 5",
        "rho = 0.5",
        "In force",
        read["agreement"]["digest"],
        *(s["kid"] for s in read["signers"]),
    ):
        assert expected in page, expected
    assert "http://" not in page.replace("http://www.w3.org", "")  # self-contained: no assets
    pdf = hub.client.get(
        "/v1/agreements/lnob-2026/document.pdf?version=1", headers=hub.headers("secretariat")
    )
    assert pdf.status_code == 200
    assert pdf.headers["content-type"] == "application/pdf"
    text = "".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf.content)).pages)
    assert "LNOB data sharing" in text
    assert "Signatures" in text
    missing = hub.client.get(
        "/v1/agreements/lnob-2026/document.pdf?version=9", headers=hub.headers("secretariat")
    )
    assert missing.json()["error"]["code"] == "agreement_not_found"
