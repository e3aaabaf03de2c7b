"""A Redis restart under running queries, with real processes: the hub under uvicorn and a
Celery worker on a private `redis-server` without persistence (a restart loses every queued
and unacknowledged message), and two push nodes, one of them slow.

The hub's database is the record of what is open: queries in flight and queries submitted
while Redis is down complete once it is back (the hub's sweeper sends lost deliveries again,
the worker reconnects), the hub is never restarted, and no node charges a budget twice.
"""

import dataclasses
import signal
from collections.abc import Iterator
from contextlib import ExitStack
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from federation_procs import celery_env, free_port, hub_and_worker, redis_server
from test_e2e_federation import Faulty

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
from sauti.demo.data import DemoNode, demo_nodes
from sauti.demo.run import ANALYST_ORG, SECRETARIAT, demo_terms
from sauti.serve import serve_in_thread

pytestmark = pytest.mark.e2e

RHO = 0.05
SLOW_SECONDS = 3.0
# Modes of the Faulty wrapper (see test_e2e_federation): the slow node is still answering
# when Redis goes down.
NODES = {"np-ok": ("ok", 0), "bd-slow": ("slow", 1)}


@pytest.fixture
def work(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path
    dispose_engines()


def _node_outcome(client: httpx.Client, query_id: str, node_id: str, ana: dict[str, str]) -> str:
    """Wait (bounded) until `node_id` has answered `query_id`; its outcome."""
    outcome = "pending"
    for _ in range(200):
        body = client.get(f"/v1/queries/{query_id}", params={"wait": 0.2}, headers=ana).json()
        outcome = next(n["outcome"] for n in body["nodes"] if n["node_id"] == node_id)
        if outcome != "pending":
            break
    return outcome


def _complete(client: httpx.Client, query_id: str, ana: dict[str, str]) -> dict[str, Any]:
    for _ in range(10):
        body: dict[str, Any] = client.get(
            f"/v1/queries/{query_id}", params={"wait": 10}, headers=ana
        ).json()
        if body["status"] != "running":
            return body
    raise AssertionError("the query never completed")


def test_queries_survive_a_redis_restart(work: Path, postgres_url: str) -> None:
    redis_port = free_port()
    env = celery_env(f"redis://127.0.0.1:{redis_port}/0", postgres_url)
    env["HUB_NODE_BACKOFF_SECONDS"] = "0.05"
    env["HUB_REDISPATCH_SECONDS"] = "2"
    hub_dir = work / "hub"
    identity = hub_home.init_home(hub_dir, hub_id="lnob-hub")
    engine = make_engine(postgres_url)
    try:
        with init_db(engine)() as s:
            secretariat = create_token(
                session=s, name="sec", organisation=SECRETARIAT, role="secretariat"
            )
            analyst = create_token(session=s, name="ana", organisation=ANALYST_ORG, role="analyst")
    finally:
        engine.dispose()
    sec = {"Authorization": f"Bearer {secretariat}"}
    ana = {"Authorization": f"Bearer {analyst}"}

    base = demo_nodes(rows=300)
    demo: list[DemoNode] = []
    homes: dict[str, Path] = {}
    for node_id, (_mode, source) in NODES.items():
        node = dataclasses.replace(base[source], node_id=node_id, organisation=f"CSO {node_id}")
        demo.append(node)
        home = work / "nodes" / node_id
        node_home.init_home(home, name=node.organisation, country=node.country, node_id=node_id)
        node_datasets.import_frame(home=home, contract=node.contract, frame=node.frame)
        homes[node_id] = home

    logs = {name: work / f"{name}.log" for name in ("redis", "hub", "worker")}
    with ExitStack() as stack:
        redis = stack.enter_context(redis_server(redis_port, log=logs["redis"]))
        hub_url = stack.enter_context(
            hub_and_worker(hub_dir, env=env, hub_log=logs["hub"], worker_log=logs["worker"])
        )
        client = stack.enter_context(httpx.Client(base_url=hub_url, timeout=60))
        faulty: list[Faulty] = []
        for node_id, (mode, _source) in NODES.items():
            app = Faulty(
                create_node_app(NodeSettings(home=homes[node_id])), mode, delay=SLOW_SECONDS
            )
            url = stack.enter_context(serve_in_thread(app)).url
            stack.callback(app.release)  # before its server stops (see Faulty)
            faulty.append(app)
            token = client.post("/v1/enrollment-tokens", json={"node_id": node_id}, headers=sec)
            assert token.status_code == 201, token.text
            sync.enroll(
                home=homes[node_id],
                hub_url=hub_url,
                token=token.json()["token"],
                mode="push",
                url=url,
            )
        terms = demo_terms(nodes=demo, hub_id=identity.hub_id)
        created = client.post("/v1/agreements", json=terms.model_dump(mode="json"), headers=sec)
        assert created.status_code == 201, created.text
        signed = SignedAgreement.model_validate(created.json()["agreement"])
        for home in homes.values():
            signature = node_agreements.sign(home=home, agreement=signed)
            response = client.post(
                f"/v1/agreements/{terms.agreement_id}/signatures",
                json=signature.model_dump(mode="json"),
                headers=sec,
            )
            assert response.status_code == 201, response.text

        spec = {
            "agreement_id": terms.agreement_id,
            "dataset": demo[0].contract.name,
            "measure": "count",
            "group_by": ["group"],
            "rho": RHO,
        }
        params = {"wait": 0, "ttl_seconds": 40}

        def submit() -> str:
            response = client.post("/v1/queries", json=spec, params=params, headers=ana)
            assert response.status_code in (201, 202), response.text
            query_id: str = response.json()["query_id"]
            return query_id

        # In flight: the fast node has answered through the worker, the slow one is answering.
        first = submit()
        assert _node_outcome(client, first, "np-ok", ana) == "ok"

        # Redis dies, losing every message; a query submitted meanwhile is still recorded.
        redis.send_signal(signal.SIGKILL)
        redis.wait(timeout=10)
        second = submit()
        stack.enter_context(redis_server(redis_port, log=logs["redis"]))

        # Back: both complete, every node answering, without restarting hub or worker.
        for query_id in (first, second):
            result = _complete(client, query_id, ana)
            outcomes = {n["node_id"]: (n["outcome"], n["error_code"]) for n in result["nodes"]}
            assert outcomes == {"np-ok": ("ok", None), "bd-slow": ("ok", None)}, query_id
            assert result["status"] == "complete"
        # And the hub works as before (the slow node, its part done, now answers at once).
        for app in faulty:
            app.release()
        third = submit()
        assert _complete(client, third, ana)["status"] == "complete"

    # Deliveries were sent again (some twice); every node charged each query exactly once.
    for node_id, home in homes.items():
        (budget,) = node_ledger.budget_report(home=home)
        assert budget.queries == 3, node_id
        assert budget.rho_spent == 3 * Decimal(repr(RHO)), node_id
    hub_log = logs["hub"].read_text(errors="replace")
    assert "could not publish" in hub_log  # the query submitted while Redis was down
