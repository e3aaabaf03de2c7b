"""Benchmark: hub query latency over N in-process nodes (N = 1, 5, 20, 50), 100k rows each.

Every node is a real node app (its own home, SQLite ledger, Parquet data, Ed25519 key),
reached through `httpx.ASGITransport`; the hub is the real hub app with its in-process
dispatcher. Latency is measured at the hub's API: from POST /v1/queries to the complete
result. Prints p50 and p95 per N and the ratio to N = 1 (target: 20 nodes <= 1.5x one).

All nodes share this machine's cores, so node compute that would run on N machines in a
deployment runs here on two (and partly under one GIL): the first series ("real nodes")
grows with N whatever the hub does. The second series ("hub path") separates what the hub
itself adds per node: the nodes run in another process (bench/stub_nodes.py's fleet, serving
every node over real localhost HTTP), each answering at once with a correctly signed release
whose cells are its first real release's, computed by its real node app over its 100k rows.
The third ("remote nodes") has the fleet answer after a fixed delay (BENCH_NODE_LATENCY_MS, default
100: a WAN round trip plus the node's own compute on its own machine), which is what the hub
sees in a deployment. In both, this process's CPU time is the hub's alone.

Environment: BENCH_QUERIES (default 15), BENCH_ROWS (default 100000), BENCH_NODE_LATENCY_MS,
BENCH_SERIES ("real nodes", "hub path" or "remote nodes": run only that series).
"""

import asyncio
import contextlib
import dataclasses
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx
import stub_nodes

from contracts.v1 import DatasetContract, SignedAgreement
from contracts.v1.agreement import Aggregation
from hub import home as hub_home
from hub.app import create_app as create_hub_app
from hub.auth.tokens import create_token
from hub.db import init_db, make_engine
from hub.settings import HubSettings
from node import home as node_home
from node.agreements import service as node_agreements
from node.app import create_app as create_node_app
from node.datasets import service as node_datasets
from node.settings import NodeSettings
from runtime.apps import settle_heap
from sauti.demo.data import DemoNode, demo_nodes
from sauti.demo.run import ANALYST_ORG, SECRETARIAT, demo_terms

ROWS = int(os.environ.get("BENCH_ROWS", "100000"))
SIZES = (1, 5, 20, 50)
QUERIES = int(os.environ.get("BENCH_QUERIES", "15"))
WARMUP = 2
RHO = 0.0005
# Larger fleets sign the agreement straight into the hub's database (stub_nodes.store_signatures).
SIGN_DIRECTLY_ABOVE = 50
NODE_LATENCY = float(os.environ.get("BENCH_NODE_LATENCY_MS", "100")) / 1000


class Routes(httpx.AsyncBaseTransport):
    def __init__(self, routes: dict[str, httpx.AsyncBaseTransport]) -> None:
        self.routes = routes

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self.routes[request.url.host].handle_async_request(request)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def run_size(
    work: Path,
    base: list[DemoNode],
    n: int,
    *,
    replay: bool,
    latency: float = 0.0,
    aggregation: Aggregation = "per_node",
    queries: int = QUERIES,
) -> tuple[list[float], list[float]]:
    """Latencies at the hub and this process's CPU seconds per query (hub and in-process
    nodes together); `replay`: stub nodes answering after `latency` seconds (per-node
    releases only); `aggregation`: the agreement's (bench/accuracy.py times `secure`)."""
    tag = f"{n}-{int(replay)}-{int(latency * 1000)}-{aggregation}"
    hub_dir = work / f"hub-{tag}"
    identity = hub_home.init_home(hub_dir, hub_id="bench-hub")
    settings = HubSettings(home=hub_dir, request_ttl_seconds=600)
    nodes = [
        dataclasses.replace(base[i % len(base)], node_id=f"node-{i:02d}", organisation=f"CSO {i}")
        for i in range(n)
    ]
    homes: dict[str, Path] = {}
    for node in nodes:
        home = work / f"nodes-{tag}" / node.node_id
        node_home.init_home(
            home, name=node.organisation, country=node.country, node_id=node.node_id
        )
        node_home.pin_hub(home, hub_id=identity.hub_id, public_jwk=identity.public_jwk)
        node_datasets.import_frame(home=home, contract=node.contract, frame=node.frame)
        homes[node.node_id] = home
    stubs = [
        stub_nodes.home_node(homes[n.node_id], organisation=n.organisation, country=n.country)
        for n in nodes
    ]
    with contextlib.ExitStack() as stack:
        if replay:
            urls = stack.enter_context(
                stub_nodes.fleet(
                    stubs, hub_jwk=identity.public_jwk, work=work / f"fleet-{tag}", latency=latency
                )
            )
            transport: httpx.AsyncBaseTransport | None = None
        else:
            urls = {node_id: f"http://{node_id}.bench" for node_id in homes}
            transport = Routes(
                {
                    f"{node_id}.bench": httpx.ASGITransport(
                        app=create_node_app(NodeSettings(home=home))
                    )
                    for node_id, home in homes.items()
                }
            )
        return await measure(
            settings,
            stubs,
            urls,
            transport,
            contract=nodes[0].contract,
            aggregation=aggregation,
            queries=queries,
        )


def tokens(settings: HubSettings) -> tuple[str, str]:
    """An admin's and an analyst's API token at the hub."""
    engine = make_engine(settings.effective_database_url)
    with init_db(engine)() as s:
        admin = create_token(session=s, name="a", organisation=SECRETARIAT, role="admin")
        analyst = create_token(session=s, name="n", organisation=ANALYST_ORG, role="analyst")
    engine.dispose()
    return admin, analyst


async def propose(
    hub: httpx.AsyncClient,
    *,
    admin: str,
    parties: Sequence[Any],
    hub_id: str,
    aggregation: Aggregation,
) -> SignedAgreement:
    """The demo's agreement among `parties` (budget 10), proposed at the hub and signed by it."""
    terms = demo_terms(nodes=parties, hub_id=hub_id)
    terms = terms.model_copy(update={"rho_budget": 10.0, "aggregation": aggregation})
    r = await hub.post(
        "/v1/agreements",
        json=terms.model_dump(mode="json"),
        headers={"Authorization": f"Bearer {admin}"},
    )
    r.raise_for_status()
    return SignedAgreement.model_validate(r.json()["agreement"])


async def agree(
    hub: httpx.AsyncClient,
    *,
    admin: str,
    settings: HubSettings,
    nodes: list[DemoNode],
    homes: dict[str, Path],
    urls: dict[str, str],
    aggregation: Aggregation = "per_node",
) -> dict[str, Any]:
    """Enroll the nodes and sign the agreement at hub and nodes; returns the queries' spec."""
    identity = hub_home.load_identity(settings.home)
    for node in nodes:
        info = node_home.load_identity(homes[node.node_id])
        r = await hub.post(
            "/v1/nodes",
            json={
                "node_id": node.node_id,
                "name": node.organisation,
                "country": node.country,
                "url": urls[node.node_id],
                "public_jwk": info.public_jwk,
            },
            headers={"Authorization": f"Bearer {admin}"},
        )
        r.raise_for_status()
    signed = await propose(
        hub, admin=admin, parties=nodes, hub_id=identity.hub_id, aggregation=aggregation
    )
    terms = signed.terms
    for node in nodes:
        signature = node_agreements.sign(home=homes[node.node_id], agreement=signed)
        r = await hub.post(
            f"/v1/agreements/{terms.agreement_id}/signatures",
            json=signature.model_dump(mode="json"),
            headers={"Authorization": f"Bearer {admin}"},
        )
        r.raise_for_status()
    return {
        "agreement_id": terms.agreement_id,
        "dataset": nodes[0].contract.name,
        "measure": "count",
        "group_by": ["group", "sex"],
        "rho": RHO,
    }


async def measure(
    settings: HubSettings,
    nodes: Sequence[stub_nodes.StubNode],
    urls: dict[str, str],
    transport: httpx.AsyncBaseTransport | None,
    *,
    contract: DatasetContract,
    aggregation: Aggregation = "per_node",
    queries: int = QUERIES,
    warmup: int = WARMUP,
    other_cpu: Callable[[], float] | None = None,
    other_cpu_times: list[float] | None = None,
) -> tuple[list[float], list[float]]:
    """Enroll the nodes, agree on `contract`'s dataset, and time the queries at the hub's API:
    latencies and this process's CPU seconds per query. With `other_cpu` (CPU seconds of
    other processes so far, e.g. a stub fleet's), each query's share of it is appended to
    `other_cpu_times`."""
    identity = hub_home.load_identity(settings.home)
    admin, analyst = tokens(settings)
    app = create_hub_app(settings, transport=transport)
    settle_heap()  # as `sauti hub serve` and the hub's workers do once their app is built
    latencies: list[float] = []
    cpu_times: list[float] = []
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://hub.bench", timeout=600
        ) as hub,
    ):
        for node in nodes:
            r = await hub.post(
                "/v1/nodes",
                json=stub_nodes.registration(node, urls[node.node_id]),
                headers={"Authorization": f"Bearer {admin}"},
            )
            r.raise_for_status()
        signed = await propose(
            hub,
            admin=admin,
            parties=stub_nodes.parties(nodes, contract),
            hub_id=identity.hub_id,
            aggregation=aggregation,
        )
        terms = signed.terms
        if len(nodes) > SIGN_DIRECTLY_ABOVE:
            stub_nodes.store_signatures(settings.effective_database_url, signed, nodes)
        for node in nodes if len(nodes) <= SIGN_DIRECTLY_ABOVE else ():
            signature = stub_nodes.agreement_signature(node, signed)
            r = await hub.post(
                f"/v1/agreements/{terms.agreement_id}/signatures",
                json=signature.model_dump(mode="json"),
                headers={"Authorization": f"Bearer {admin}"},
            )
            r.raise_for_status()
        spec: dict[str, Any] = {
            "agreement_id": terms.agreement_id,
            "dataset": contract.name,
            "measure": "count",
            "group_by": ["group", "sex"],
            "rho": RHO,
        }
        for i in range(warmup + queries):
            start, cpu_start = time.perf_counter(), time.process_time()
            other_start = other_cpu() if other_cpu is not None else 0.0
            r = await hub.post(
                "/v1/queries", json=spec, headers={"Authorization": f"Bearer {analyst}"}
            )
            elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
            other = other_cpu() - other_start if other_cpu is not None else 0.0
            body = r.json()
            if body.get("status") != "complete":
                raise RuntimeError(f"query not complete: {body.get('status')} {body.get('nodes')}")
            if body.get("aggregation") != aggregation and len(nodes) > 1:
                raise RuntimeError(f"aggregated {body.get('aggregation')}, not {aggregation}")
            if i >= warmup:
                latencies.append(elapsed)
                cpu_times.append(cpu)
                if other_cpu_times is not None:
                    other_cpu_times.append(other)
    return latencies, cpu_times


SERIES = (
    (
        "real nodes",
        False,
        0.0,
        "every node is a real node app in this process computing a DP release over its own "
        "100k rows; N nodes' compute shares this machine's cores (and partly one GIL), so "
        "this series grows with N whatever the hub does",
    ),
    (
        "hub path",
        True,
        0.0,
        "stub nodes in a second process answer at once over localhost HTTP, each on its own "
        "port, with a correctly signed release: what the hub itself adds per node, i.e. "
        "signing, the HTTP exchange, verification, storing and combining (CPU ms: the "
        "hub's alone)",
    ),
    (
        "remote nodes",
        True,
        NODE_LATENCY,
        f"the same stubs answer after {NODE_LATENCY * 1000:.0f} ms (BENCH_NODE_LATENCY_MS: "
        "a WAN round trip plus the node's own compute on its own machine), which is what "
        "a deployed hub sees",
    ),
)


def main() -> None:
    sizes = tuple(int(s) for s in sys.argv[1:]) or SIZES
    only = os.environ.get("BENCH_SERIES")
    print(f"generating {ROWS:,} rows per node (3 distinct CSO datasets, reused)...")
    base = demo_nodes(rows=ROWS)
    print(
        f"p50 and p95: latency at the hub of POST /v1/queries until the complete result, "
        f"{QUERIES} queries per N (count by group x sex) after {WARMUP} warm-up queries; "
        "target: p50 at 20 nodes <= 1.5 x p50 at 1 node. CPU ms: median CPU time of this "
        "process per query (the hub, plus the nodes in the real-nodes series; all threads), "
        "what the work costs "
        "apart from waiting (it still grows when other programs load the machine)"
    )
    summary: list[str] = []
    with tempfile.TemporaryDirectory(prefix="sauti-bench-fed-") as tmp:
        for name, replay, latency, explanation in SERIES:
            if only and name != only:
                continue
            print(f"\n{name}: {explanation}")
            print(f"{'N':>4} {'p50 ms':>9} {'p95 ms':>9} {'p50 / N=1':>10} {'CPU ms':>8}")
            one: float | None = None
            for n in sizes:
                lat, cpu = asyncio.run(run_size(Path(tmp), base, n, replay=replay, latency=latency))
                p50, p95 = statistics.median(lat) * 1000, percentile(lat, 0.95) * 1000
                one = one or p50
                cpu_ms = statistics.median(cpu) * 1000
                print(
                    f"{n:>4} {p50:>9.1f} {p95:>9.1f} {p50 / one:>9.2f}x {cpu_ms:>8.1f}", flush=True
                )
                if n == 20:
                    verdict = "within" if p50 / one <= 1.5 else "OVER"
                    summary.append(f"{name}: 20 nodes {p50 / one:.2f}x one node ({verdict} 1.5x)")
    print("\n" + "\n".join(summary))


if __name__ == "__main__":
    main()
