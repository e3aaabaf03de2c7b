"""Secure aggregation through the Celery path, with real processes: the hub under uvicorn, a
Celery worker on the shared Redis, and three push nodes served over HTTP. The worker runs both
phases; the hub records only the sum; each node charges the query once."""

from collections.abc import Iterator
from contextlib import ExitStack
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from federation_procs import celery_env, hub_and_worker, require_redis

from contracts.v1 import SignedAgreement
from hub import home as hub_home
from hub.auth.tokens import create_token
from hub.db import init_db, make_engine
from node import home as node_home
from node.agreements import service as node_agreements
from node.app import create_app as create_node_app
from node.datasets import service as node_datasets
from node.db import dispose_engines
from node.ledger import service as node_ledger
from node.settings import NodeSettings
from node.sync import service as sync
from sauti.demo.data import demo_nodes
from sauti.demo.run import ANALYST_ORG, SECRETARIAT, demo_terms
from sauti.serve import serve_in_thread

pytestmark = pytest.mark.e2e

RHO = 0.05


@pytest.fixture
def work(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path
    dispose_engines()


def test_secure_aggregation_runs_on_a_celery_worker(work: Path, postgres_url: str) -> None:
    env = celery_env(require_redis(), postgres_url)
    hub_dir = work / "hub"
    identity = hub_home.init_home(hub_dir, hub_id="lnob-hub")
    engine = make_engine(postgres_url)
    try:
        with init_db(engine)() as s:
            sec = create_token(session=s, name="sec", organisation=SECRETARIAT, role="secretariat")
            ana = create_token(session=s, name="ana", organisation=ANALYST_ORG, role="analyst")
    finally:
        engine.dispose()
    sec_h, ana_h = {"Authorization": f"Bearer {sec}"}, {"Authorization": f"Bearer {ana}"}
    nodes = demo_nodes(rows=300)[:3]
    homes: dict[str, Path] = {}
    for node in nodes:
        home = work / "nodes" / node.node_id
        node_home.init_home(
            home, name=node.organisation, country=node.country, node_id=node.node_id
        )
        node_datasets.import_frame(home=home, contract=node.contract, frame=node.frame)
        homes[node.node_id] = home
    logs = {name: work / f"{name}.log" for name in ("hub", "worker")}
    with ExitStack() as stack:
        hub_url = stack.enter_context(
            hub_and_worker(hub_dir, env=env, hub_log=logs["hub"], worker_log=logs["worker"])
        )
        client = stack.enter_context(httpx.Client(base_url=hub_url, timeout=60))
        for node in nodes:
            app = create_node_app(NodeSettings(home=homes[node.node_id]))
            url = stack.enter_context(serve_in_thread(app)).url
            token = client.post(
                "/v1/enrollment-tokens", json={"node_id": node.node_id}, headers=sec_h
            )
            assert token.status_code == 201, token.text
            sync.enroll(
                home=homes[node.node_id],
                hub_url=hub_url,
                token=token.json()["token"],
                mode="push",
                url=url,
            )
        terms = demo_terms(nodes=nodes, hub_id=identity.hub_id).model_copy(
            update={"aggregation": "secure"}
        )
        created = client.post("/v1/agreements", json=terms.model_dump(mode="json"), headers=sec_h)
        assert created.status_code == 201, created.text
        signed = SignedAgreement.model_validate(created.json()["agreement"])
        for home in homes.values():
            signature = node_agreements.sign(home=home, agreement=signed)
            response = client.post(
                f"/v1/agreements/{terms.agreement_id}/signatures",
                json=signature.model_dump(mode="json"),
                headers=sec_h,
            )
            assert response.status_code == 201, response.text
        spec = {
            "agreement_id": terms.agreement_id,
            "dataset": nodes[0].contract.name,
            "measure": "count",
            "group_by": ["sex"],
            "rho": RHO,
        }
        response = client.post("/v1/queries", json=spec, params={"wait": 30}, headers=ana_h)
        assert response.status_code in (201, 202), response.text
        result: dict[str, Any] = response.json()
        for _ in range(10):
            if result["status"] != "running":
                break
            result = client.get(
                f"/v1/queries/{result['query_id']}", params={"wait": 10}, headers=ana_h
            ).json()
    assert result["status"] == "complete", result["nodes"]
    assert result["aggregation"] == "secure", result["aggregation_note"]
    pooled = sum(n.frame.height for n in nodes)
    assert abs(sum(c["estimate"] or 0 for c in result["cells"]) - pooled) < 200
    for node_id, home in homes.items():
        (budget,) = node_ledger.budget_report(home=home)
        assert budget.queries == 1, node_id
        assert budget.rho_spent == Decimal(repr(RHO)), node_id
