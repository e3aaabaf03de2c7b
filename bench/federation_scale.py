"""Benchmark: the hub at 1, 20 and 1,000 remote nodes (issue #25: hub CPU per node, fan-out).

The hub is the real hub app (in-process dispatcher, SQLite) in this process; the nodes are
bench/stub_nodes.py's fleet in other processes over real localhost HTTP, each node on its
own port with its own Ed25519 key, answering after BENCH_NODE_LATENCY_MS (default 100: a
WAN round trip plus a node's own compute on its own machine) with a release signed for that
very request. So this process's CPU time is the hub's alone: planning, signing a request per
node, the HTTP exchange, verifying every answer, storing and combining.

Prints p50 latency at the hub's API (POST /v1/queries until the complete result) and the
hub's CPU per query for each N, then the targets:
- hub-cpu-ms-per-node: this process's CPU per query ÷ N at the largest N (limit 1 ms);
- remote-20-vs-1, remote-1000-vs-1: p50 at 20 and at BENCH_NODES nodes ÷ p50 at one node
  (limits 1.2 and 3).

Environment: BENCH_NODES (default 1000), BENCH_QUERIES (default 7 per N), BENCH_QUICK=1
(3 queries per N), BENCH_NODE_LATENCY_MS, BENCH_FLEET_PROCESSES (default 2).
"""

import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path

import federation
import stub_nodes

from hub import home as hub_home
from hub.settings import HubSettings
from sauti.demo.data import COUNTRIES, make_contract

QUICK = os.environ.get("BENCH_QUICK") == "1"
NODES = int(os.environ.get("BENCH_NODES", "1000"))
QUERIES = int(os.environ.get("BENCH_QUERIES", "3" if QUICK else "7"))
LATENCY = float(os.environ.get("BENCH_NODE_LATENCY_MS", "100")) / 1000
FLEET_PROCESSES = int(os.environ.get("BENCH_FLEET_PROCESSES", "2"))
WARMUP = 1


async def run(work: Path, n: int) -> tuple[list[float], list[float], list[float]]:
    """Latencies, this process's CPU seconds and the stub fleet's of each query at `n` stub
    nodes."""
    hub_dir = work / f"hub-{n}"
    identity = hub_home.init_home(hub_dir, hub_id="bench-hub")
    # A deadline well past what any query here takes: every node answers within it.
    settings = HubSettings(home=hub_dir, request_ttl_seconds=600)
    nodes = stub_nodes.stub_nodes(n)
    with stub_nodes.fleet(
        nodes,
        hub_jwk=identity.public_jwk,
        work=work / f"fleet-{n}",
        latency=LATENCY,
        processes=min(FLEET_PROCESSES, n),
    ) as urls:
        fleet_cpu: list[float] = []
        latencies, cpu = await federation.measure(
            settings,
            nodes,
            urls,
            None,
            contract=make_contract(COUNTRIES[0]),
            queries=QUERIES,
            warmup=WARMUP,
            other_cpu=stub_nodes.children_cpu_seconds,
            other_cpu_times=fleet_cpu,
        )
        return latencies, cpu, fleet_cpu


def target(name: str, value: float, limit: float, *, at_most: bool = True) -> str:
    ok = value <= limit if at_most else value >= limit
    return f"target {name}: {value:.3g} (limit {limit:g}) {'PASS' if ok else 'FAIL'}"


def main() -> None:
    sizes = sorted({1, 20, NODES})
    print(
        f"p50: latency at the hub of POST /v1/queries until the complete result, {QUERIES} "
        f"queries per N after {WARMUP} warm-up; nodes answer after {LATENCY * 1000:.0f} ms "
        f"from {FLEET_PROCESSES} fleet process(es); CPU ms: this process's (the hub's) CPU "
        "per query; fleet ms/node: the stub fleet's processes' CPU per answer (they stand in "
        "for nodes on machines of their own, but share this one's cores)"
    )
    print(
        f"{'N':>5} {'p50 ms':>9} {'p50 / N=1':>10} {'CPU ms':>9} {'CPU ms/node':>12} "
        f"{'fleet ms/node':>14} {'setup s':>8}"
    )
    p50s: dict[int, float] = {}
    cpu_per_node: dict[int, float] = {}
    with tempfile.TemporaryDirectory(prefix="sauti-bench-scale-") as tmp:
        for n in sizes:
            start = time.perf_counter()
            latencies, cpu, fleet_cpu = asyncio.run(run(Path(tmp), n))
            setup = time.perf_counter() - start - sum(latencies)
            p50s[n] = statistics.median(latencies) * 1000
            cpu_ms = statistics.median(cpu) * 1000
            cpu_per_node[n] = cpu_ms / n
            print(
                f"{n:>5} {p50s[n]:>9.1f} {p50s[n] / p50s[1]:>9.2f}x {cpu_ms:>9.1f} "
                f"{cpu_per_node[n]:>12.3f} {statistics.median(fleet_cpu) * 1000 / n:>14.3f} "
                f"{setup:>8.1f}",
                flush=True,
            )
    print()
    print(target("hub-cpu-ms-per-node", cpu_per_node[NODES], 1))
    print(target("remote-20-vs-1", p50s[20] / p50s[1], 1.2))
    if NODES != 1000:
        print(f"(BENCH_NODES={NODES}: the line below is measured at {NODES} nodes)")
    print(target("remote-1000-vs-1", p50s[NODES] / p50s[1], 3))


if __name__ == "__main__":
    main()
