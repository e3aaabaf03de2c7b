"""One query to 1,000 push nodes: bench/stub_nodes.py's fleet in another process, each node
on its own localhost port with its own key, answering over real HTTP with a release signed
for that very request. The hub (in this process, its API driven in process) completes the
query with 1,000 answers, and every one of them was verified with its node's pinned key.
"""

import asyncio
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from contracts import signing
from contracts.v1 import Release, SignedAgreement
from hub import home as hub_home
from hub.app import create_app
from hub.auth.tokens import create_token
from hub.db import init_db, make_engine
from hub.queries.models import QueryNodeRow
from hub.settings import HubSettings
from sauti.demo.data import COUNTRIES, make_contract
from sauti.demo.run import ANALYST_ORG, SECRETARIAT, demo_terms

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import stub_nodes

pytestmark = pytest.mark.e2e

NODES = 1000


def test_a_query_to_1000_nodes_completes_with_1000_verified_answers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    identity = hub_home.init_home(tmp_path / "hub", hub_id="scale-hub")
    settings = HubSettings(home=tmp_path / "hub", request_ttl_seconds=120, node_retries=1)
    verified: list[str] = []
    real_verify = signing.verify_model
    real_verify_by_kid = signing.verify_by_kid

    def counting(token: str, keys: Any) -> bytes:
        payload = real_verify_by_kid(token, keys)
        if b'"request_digest"' in payload:  # a release (not a node's signed contracts)
            verified.append(Release.model_validate_json(payload).node_id)
        return payload

    # Counts the releases whose signature the hub checked with the key pinned under the
    # token's kid (a forged one raises above); the hub verifies every node message this way.
    monkeypatch.setattr(signing, "verify_by_kid", counting)
    nodes = stub_nodes.stub_nodes(NODES)
    with stub_nodes.fleet(
        nodes, hub_jwk=identity.public_jwk, work=tmp_path / "fleet", latency=0.1, processes=2
    ) as urls:
        body = asyncio.run(_query(settings, nodes, urls))
    assert body["status"] == "complete"
    outcomes = [n["outcome"] for n in body["nodes"]]
    assert len(outcomes) == NODES
    assert outcomes == ["ok"] * NODES
    assert sorted(verified) == sorted(n.node_id for n in nodes)

    # What the hub stored: each release signed by its own node's key, for this query.
    keys = {n.node_id: signing.load_public_key(n.public_jwk) for n in nodes}
    engine = make_engine(settings.effective_database_url)
    with init_db(engine)() as session:
        rows = session.scalars(
            select(QueryNodeRow).where(QueryNodeRow.query_id == body["query_id"])
        ).all()
        assert len(rows) == NODES
        for row in rows:
            assert row.release_jws is not None
            release = real_verify(row.release_jws, keys[row.node_id], Release)
            assert (str(release.query_id), release.node_id) == (body["query_id"], row.node_id)
    engine.dispose()


def test_forged_misbound_and_oversized_answers_are_refused_and_nothing_of_them_stored(
    tmp_path: Path,
) -> None:
    identity = hub_home.init_home(tmp_path / "hub", hub_id="scale-hub")
    settings = HubSettings(home=tmp_path / "hub", request_ttl_seconds=60, node_retries=0)
    nodes = stub_nodes.stub_nodes(4)
    faults = {nodes[1].node_id: "forged", nodes[2].node_id: "other_query"}
    faults[nodes[3].node_id] = "oversized"
    with stub_nodes.fleet(
        nodes, hub_jwk=identity.public_jwk, work=tmp_path / "fleet", latency=0, faults=faults
    ) as urls:
        body = asyncio.run(_query(settings, nodes, urls))
    codes = {n["node_id"]: (n["outcome"], n["error_code"]) for n in body["nodes"]}
    assert codes == {
        nodes[0].node_id: ("ok", None),
        nodes[1].node_id: ("failed", "release_invalid"),
        nodes[2].node_id: ("failed", "release_invalid"),
        nodes[3].node_id: ("failed", "response_too_large"),
    }
    assert body["status"] == "partial"
    engine = make_engine(settings.effective_database_url)
    with init_db(engine)() as session:
        stored = session.scalars(
            select(QueryNodeRow.node_id).where(QueryNodeRow.release_jws.is_not(None))
        ).all()
    engine.dispose()
    assert stored == [nodes[0].node_id]


async def _query(
    settings: HubSettings, nodes: list[stub_nodes.StubNode], urls: dict[str, str]
) -> dict[str, Any]:
    engine = make_engine(settings.effective_database_url)
    with init_db(engine)() as s:
        admin = create_token(session=s, name="a", organisation=SECRETARIAT, role="admin")
        analyst = create_token(session=s, name="n", organisation=ANALYST_ORG, role="analyst")
    engine.dispose()
    app = create_app(settings)
    contract = make_contract(COUNTRIES[0])
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://hub.test", timeout=300
        ) as hub,
    ):
        auth = {"Authorization": f"Bearer {admin}"}
        for node in nodes:
            r = await hub.post(
                "/v1/nodes", json=stub_nodes.registration(node, urls[node.node_id]), headers=auth
            )
            assert r.status_code == 201, r.text
        hub_id = hub_home.load_identity(settings.home).hub_id
        terms = demo_terms(nodes=stub_nodes.parties(nodes, contract), hub_id=hub_id)
        r = await hub.post("/v1/agreements", json=terms.model_dump(mode="json"), headers=auth)
        assert r.status_code == 201, r.text
        signed = SignedAgreement.model_validate(r.json()["agreement"])
        # Each node's real signature, stored as the signature route stores it (the route
        # answers with the whole agreement: 1,000 calls would take minutes here).
        stub_nodes.store_signatures(settings.effective_database_url, signed, nodes)
        spec = {
            "agreement_id": terms.agreement_id,
            "dataset": contract.name,
            "measure": "count",
            "group_by": ["group", "sex"],
            "rho": 0.01,
        }
        r = await hub.post("/v1/queries", json=spec, headers={"Authorization": f"Bearer {analyst}"})
        assert r.status_code in (200, 201), r.text
        result: dict[str, Any] = r.json()
        return result
