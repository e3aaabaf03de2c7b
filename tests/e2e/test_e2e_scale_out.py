"""Scale-out, shown: two hub API processes and two Celery worker processes on one PostgreSQL
and one Redis, three real node processes (`sauti node serve`), 100 concurrent queries.

Every query completes exactly once with every node's answer (one `query.completed` and one
outcome per node in the hub's chain), no submission fails, every node charges each query
once, both sides' chains verify and reconcile. Then a worker is SIGKILLed while it holds
deliveries (a node stopped with SIGSTOP keeps them in flight): the hub's sweeper sends what
it lost again, the other worker delivers it, and the nodes still charge each query once.
"""

import json
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import Result
from federation_procs import (
    SAUTI,
    celery_env,
    free_port,
    process,
    require_redis,
    wait_healthy,
    wait_worker,
)
from typer.testing import CliRunner

from contracts.v1 import SignedAgreement
from hub import home as hub_home
from hub.auth.tokens import create_token
from hub.db import init_db, make_engine
from node import home as node_home
from node.agreements import service as node_agreements
from node.datasets import service as node_datasets
from node.db import dispose_engines
from node.ledger import service as node_ledger
from node.sync import service as sync
from sauti.cli import app as sauti_app
from sauti.demo.data import demo_nodes
from sauti.demo.run import ANALYST_ORG, SECRETARIAT, demo_terms

pytestmark = pytest.mark.e2e

RHO = 0.005
QUERIES = 100
KILL_QUERIES = 12
TTL_SECONDS = 600
# Lost deliveries are sent again this long after they were last sent; slow ones may be sent
# twice meanwhile (the node answers a known query id from its store: charged once). The
# killed worker's deliveries wait this long (and up to half of it more) to be sent again.
REDISPATCH_SECONDS = 10
START_SECONDS = 600


@pytest.fixture
def work(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path
    dispose_engines()


def _cli(args: list[str], env: dict[str, str]) -> Result:
    """The audit commands run in this process: every server has stopped by then, and what is
    checked is the chains and ledgers the processes wrote, not the command's start-up."""
    return CliRunner().invoke(sauti_app, args, env=env)


def _received(log: Path) -> int:
    """Deliveries a worker has taken so far (Celery logs each task it receives)."""
    return log.read_text(errors="replace").count(" received")


def _complete(client: httpx.Client, query_id: str, headers: dict[str, str]) -> dict[str, Any]:
    for _ in range(60):
        response = client.get(f"/v1/queries/{query_id}", params={"wait": 20}, headers=headers)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        if body["status"] != "running":
            return body
    raise AssertionError(f"query {query_id} never completed")


@pytest.mark.timeout(2400)  # a dozen processes start on a shared 2-core machine
def test_two_hubs_two_workers_100_concurrent_queries_and_a_killed_worker(
    work: Path, postgres_url: str
) -> None:
    redis_url = require_redis().rsplit("/", 1)[0] + "/11"
    env = celery_env(redis_url, postgres_url)
    env.update(
        HUB_NODE_BACKOFF_SECONDS="0.05",
        HUB_REDISPATCH_SECONDS=str(REDISPATCH_SECONDS),
        HUB_NODE_TIMEOUT_SECONDS="60",
    )
    hub_dir = work / "hub"
    identity = hub_home.init_home(hub_dir, hub_id="lnob-hub")
    engine = make_engine(postgres_url)
    try:
        with init_db(engine)() as s:
            sec_token = create_token(
                session=s, name="sec", organisation=SECRETARIAT, role="secretariat"
            )
            ana_token = create_token(
                session=s, name="ana", organisation=ANALYST_ORG, role="analyst"
            )
    finally:
        engine.dispose()
    sec = {"Authorization": f"Bearer {sec_token}"}
    ana = {"Authorization": f"Bearer {ana_token}"}

    nodes = demo_nodes(rows=300)[:3]
    homes: dict[str, Path] = {}
    for node in nodes:
        home = work / "nodes" / node.node_id
        node_home.init_home(
            home, name=node.organisation, country=node.country, node_id=node.node_id
        )
        node_datasets.import_frame(home=home, contract=node.contract, frame=node.frame)
        homes[node.node_id] = home

    logs = {
        name: work / f"{name}.log" for name in ("hub-a", "hub-b", "worker-1", "worker-2", *homes)
    }
    worker_args = ["hub", "worker", "--home", str(hub_dir), "--pool", "threads"]
    worker_args += ["--concurrency", "8", "--processes", "1"]
    with ExitStack() as stack:
        # Everything starts at once: each process takes seconds to import on a loaded machine.
        hubs: dict[str, tuple[str, subprocess.Popen[bytes]]] = {}
        for name in ("hub-a", "hub-b"):
            port = free_port()
            args = [SAUTI, "hub", "serve", "--home", str(hub_dir), "--port", str(port)]
            proc = stack.enter_context(process(args, env=env, log=logs[name]))
            hubs[name] = (f"http://127.0.0.1:{port}", proc)
        workers = {
            name: stack.enter_context(process([SAUTI, *worker_args], env=env, log=logs[name]))
            for name in ("worker-1", "worker-2")
        }
        node_procs: dict[str, tuple[str, subprocess.Popen[bytes]]] = {}
        for node_id, home in homes.items():
            port = free_port()
            args = [SAUTI, "node", "serve", "--home", str(home), "--port", str(port)]
            proc = stack.enter_context(process(args, env={}, log=logs[node_id]))
            node_procs[node_id] = (f"http://127.0.0.1:{port}", proc)
        for name, (url, proc) in [*hubs.items(), *node_procs.items()]:
            wait_healthy(url, proc, logs[name], timeout=START_SECONDS)
        for name, proc in workers.items():
            wait_worker(proc, logs[name], timeout=START_SECONDS)

        (url_a, _), (url_b, _) = hubs.values()
        a = stack.enter_context(httpx.Client(base_url=url_a, timeout=300))
        b = stack.enter_context(httpx.Client(base_url=url_b, timeout=300))
        # Set up through both processes: either one serves any request.
        for i, node in enumerate(nodes):
            client = (a, b)[i % 2]
            token = client.post(
                "/v1/enrollment-tokens", json={"node_id": node.node_id}, headers=sec
            )
            assert token.status_code == 201, token.text
            sync.enroll(
                home=homes[node.node_id],
                hub_url=client.base_url.__str__().rstrip("/"),
                token=token.json()["token"],
                mode="push",
                url=node_procs[node.node_id][0],
            )
        terms = demo_terms(nodes=nodes, hub_id=identity.hub_id).model_copy(
            update={"rho_budget": 10.0}
        )
        created = a.post("/v1/agreements", json=terms.model_dump(mode="json"), headers=sec)
        assert created.status_code == 201, created.text
        signed = SignedAgreement.model_validate(created.json()["agreement"])
        for i, home in enumerate(homes.values()):
            signature = node_agreements.sign(home=home, agreement=signed)
            response = (b, a)[i % 2].post(
                f"/v1/agreements/{terms.agreement_id}/signatures",
                json=signature.model_dump(mode="json"),
                headers=sec,
            )
            assert response.status_code == 201, response.text
        spec = {
            "agreement_id": terms.agreement_id,
            "dataset": nodes[0].contract.name,
            "measure": "count",
            "group_by": ["group"],
            "rho": RHO,
        }

        def submit(i: int) -> tuple[int, str]:
            # Fresh connections each: the first queries also race to fetch node contracts.
            with httpx.Client(base_url=(url_a, url_b)[i % 2], timeout=300) as client:
                response = client.post(
                    "/v1/queries",
                    json=spec,
                    params={"wait": 0, "ttl_seconds": TTL_SECONDS},
                    headers=ana,
                )
            return response.status_code, response.text

        # 100 queries at once, half through each API process.
        with ThreadPoolExecutor(max_workers=QUERIES) as pool:
            answers = list(pool.map(submit, range(QUERIES)))
        assert [status for status, _ in answers if status not in (201, 202)] == [], answers
        query_ids = [json.loads(text)["query_id"] for _, text in answers]
        assert len(set(query_ids)) == QUERIES
        # Each result read through the other process than the one it was submitted to.
        for i, query_id in enumerate(query_ids):
            result = _complete((b, a)[i % 2], query_id, ana)
            outcomes = {n["node_id"]: (n["outcome"], n["error_code"]) for n in result["nodes"]}
            assert outcomes == {n.node_id: ("ok", None) for n in nodes}, query_id
            assert result["status"] == "complete"

        # A worker killed while it holds deliveries: a stopped node keeps them in flight.
        held_node = nodes[0].node_id
        held = node_procs[held_node][1]
        received = _received(logs["worker-1"])
        held.send_signal(signal.SIGSTOP)
        try:
            kill_ids = [
                json.loads(text)["query_id"]
                for status, text in map(submit, range(KILL_QUERIES))
                if status in (201, 202)
            ]
            assert len(kill_ids) == KILL_QUERIES
            deadline = time.monotonic() + 120
            while _received(logs["worker-1"]) == received and time.monotonic() < deadline:
                time.sleep(0.2)
            assert _received(logs["worker-1"]) > received, "worker-1 took no delivery"
            time.sleep(2)  # both workers' threads are now waiting on the stopped node
            workers["worker-1"].send_signal(signal.SIGKILL)
            workers["worker-1"].wait(timeout=30)
        finally:
            held.send_signal(signal.SIGCONT)
        for i, query_id in enumerate(kill_ids):
            result = _complete((a, b)[i % 2], query_id, ana)
            outcomes = {n["node_id"]: (n["outcome"], n["error_code"]) for n in result["nodes"]}
            assert outcomes == {n.node_id: ("ok", None) for n in nodes}, query_id
        hub_logs = "".join(logs[h].read_text(errors="replace") for h in ("hub-a", "hub-b"))
        assert "pending deliveries again" in hub_logs  # the killed worker's, sent again
        for name in ("hub-a", "hub-b"):
            assert " 500" not in logs[name].read_text(errors="replace"), name

    # Exactly once: one completion per query and one outcome per node and query at the hub.
    all_ids = set(query_ids) | set(kill_ids)
    hub_env = {"HUB_DATABASE_URL": postgres_url}
    hub_export = work / "hub-audit.jsonl"
    exported = _cli(["audit", "export", "--home", str(hub_dir), "--out", str(hub_export)], hub_env)
    assert exported.exit_code == 0, exported.stderr
    entries = [json.loads(line) for line in hub_export.read_text().splitlines()[1:]]
    completed = Counter(e["object"] for e in entries if e["action"] == "query.completed")
    assert completed == Counter({f"query:{q}": 1 for q in all_ids})
    outcomes_logged = Counter(
        (e["object"], e["details"]["node"]) for e in entries if e["action"] == "query.node_outcome"
    )
    assert set(outcomes_logged.values()) == {1}
    assert len(outcomes_logged) == len(all_ids) * len(nodes)

    # Each node charged each query once, whatever the hub sent twice.
    node_exports = []
    for node_id, home in homes.items():
        (budget,) = node_ledger.budget_report(home=home)
        assert budget.queries == len(all_ids), node_id
        assert budget.rho_spent == len(all_ids) * Decimal(repr(RHO)), node_id
        detail = node_ledger.budget_detail(home=home, agreement_id=terms.agreement_id)
        assert {c.query_id for c in detail.charges} == all_ids, node_id
        verified = _cli(["audit", "verify", "--home", str(home)], {})
        assert verified.exit_code == 0, verified.stdout + verified.stderr
        out = work / f"{node_id}-audit.jsonl"
        exported = _cli(["audit", "export", "--home", str(home), "--out", str(out)], {})
        assert exported.exit_code == 0, exported.stderr
        node_exports.append(str(out))
    verified = _cli(["audit", "verify", "--home", str(hub_dir)], hub_env)
    assert verified.exit_code == 0, verified.stdout + verified.stderr
    reconciled = _cli(
        [
            *("audit", "reconcile", *node_exports, "--home", str(hub_dir)),
            *("--checkpoint-overdue-entries", "0", "--json"),
        ],
        hub_env,
    )
    assert reconciled.exit_code == 0, reconciled.stdout + reconciled.stderr
    report = json.loads(reconciled.stdout)
    assert report["differences"] == []
    assert report["hub_queries"] == len(all_ids)
    assert report["node_releases"] >= len(all_ids) * len(nodes)
