"""Benchmark: the fixed cost of one query against the DP release it exists for.

Same data, same run, interleaved query by query:
  (a) bare: the DP release as the node's engine computes it (`node.privacy.engine
      .compute_release` over the node's stored Parquet file, as the node passes it): no HTTP,
      no signatures, no ledger, no audit;
  (b) end to end: one query at the hub's API (the real hub app in this process with its
      in-process dispatcher and real httpx client) → one real node app served by
      `sauti node serve` in another process over localhost HTTP (its own keys, SQLite ledger
      and audit chain) → the complete result at the hub.
The count by group x sex of the demo survey, at 100k and 1M rows. The ratio is the
end-to-end p50 divided by the bare p50 (targets: <= 3 at 100k rows, <= 1.5 at 1M rows).
CPU ms per query: this process's CPU during a query (the hub; the bare release's for (a)),
and the node process's (from /proc, 10 ms ticks, so summed over the queries).

Environment: BENCH_QUICK=1 (few repetitions), BENCH_REPETITIONS (default 25, quick 7),
BENCH_OVERHEAD_ROWS (comma-separated row counts, default "100000,1000000").
"""

import asyncio
import contextlib
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from functools import partial
from pathlib import Path

import federation
import httpx
import polars as pl

from contracts.v1 import QuerySpec
from hub import home as hub_home
from hub.app import create_app as create_hub_app
from hub.settings import HubSettings
from node import home as node_home
from node.datasets import service as node_datasets
from node.privacy.engine import compute_release
from sauti.demo.data import DemoNode, demo_nodes
from sauti.demo.run import demo_terms

QUICK = os.environ.get("BENCH_QUICK") == "1"
REPETITIONS = int(os.environ.get("BENCH_REPETITIONS", "7" if QUICK else "25"))
ROWS = tuple(int(r) for r in os.environ.get("BENCH_OVERHEAD_ROWS", "100000,1000000").split(","))
WARMUP = 2
LIMITS = {100_000: ("one-node-overhead-100k", 3.0), 1_000_000: ("one-node-overhead-1m", 1.5)}
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (all its threads) so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


@contextlib.contextmanager
def served_node(
    home: Path, *, command: list[str] | None = None, extra: Sequence[str] = ()
) -> Iterator[tuple[str, int]]:
    """`sauti node serve` in its own process; yields its URL and process id.

    `command` replaces `sauti node serve` (bench/query_stages.py: the same server with timing
    wrappers); it gets the home, the port and `extra` as its arguments."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sauti = Path(sys.executable).with_name("sauti")
    argv = (
        [str(sauti), "node", "serve", "--home", str(home), "--port", str(port)]
        if command is None
        else [*command, str(home), str(port), *extra]
    )
    log = (home / "bench-serve.log").open("wb")  # its access log, not this bench's output
    process = subprocess.Popen(
        argv,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the node process exited: see {log.name}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port)):
                break  # listening (a TCP probe: an HTTP client per try costs a TLS context)
            time.sleep(0.1)
        yield url, process.pid
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


Serve = Callable[[Path], contextlib.AbstractContextManager[tuple[str, int]]]
Ask = Callable[[Callable[[], Awaitable[httpx.Response]]], Awaitable[httpx.Response]]


async def _ask(post: Callable[[], Awaitable[httpx.Response]]) -> httpx.Response:
    return await post()


async def run_rows(
    work: Path, node: DemoNode, rows: int, *, serve: Serve = served_node, ask: Ask = _ask
) -> dict[str, list[float]]:
    """Interleaved bare and end-to-end queries over one node holding `rows` rows.

    `serve` starts the node process; `ask` sends each end-to-end query (query_stages wraps
    both to stamp them)."""
    hub_dir, home = work / f"hub-{rows}", work / f"node-{rows}"
    identity = hub_home.init_home(hub_dir, hub_id="bench-hub")
    settings = HubSettings(home=hub_dir, request_ttl_seconds=600)
    node_home.init_home(home, name=node.organisation, country=node.country, node_id=node.node_id)
    node_home.pin_hub(home, hub_id=identity.hub_id, public_jwk=identity.public_jwk)
    node_datasets.import_frame(home=home, contract=node.contract, frame=node.frame)
    stored = node_datasets.load(home=home, name=node.contract.name, version=1)
    terms = demo_terms(nodes=[node], hub_id=identity.hub_id)
    admin, analyst = federation.tokens(settings)
    times: dict[str, list[float]] = {"bare": [], "e2e": [], "bare_cpu": [], "hub_cpu": []}
    app = create_hub_app(settings)
    with serve(home) as (url, pid):
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://hub.bench", timeout=600
            ) as hub,
        ):
            spec = await federation.agree(
                hub,
                admin=admin,
                settings=settings,
                nodes=[node],
                homes={node.node_id: home},
                urls={node.node_id: url},
            )
            query = QuerySpec.model_validate(spec)

            def bare() -> object:
                return compute_release(
                    data=pl.scan_parquet(stored.parquet_path),
                    contract=stored.contract,
                    spec=query,
                    rho=query.rho,
                    min_cell_size=terms.min_cell_size,
                    max_ci_relative_width=terms.max_ci_relative_width,
                    suppress=terms.suppression == "per_node",
                    source=stored.parquet_path,
                )

            node_cpu = 0.0
            for i in range(WARMUP + REPETITIONS):
                start, cpu = time.perf_counter(), time.process_time()
                bare()
                bare_s, bare_cpu = time.perf_counter() - start, time.process_time() - cpu
                node_before = cpu_seconds(pid)
                start, cpu = time.perf_counter(), time.process_time()
                r = await ask(
                    partial(
                        hub.post,
                        "/v1/queries",
                        json=spec,
                        headers={"Authorization": f"Bearer {analyst}"},
                    )
                )
                e2e_s, hub_cpu = time.perf_counter() - start, time.process_time() - cpu
                if r.json().get("status") != "complete":
                    raise RuntimeError(f"query not complete: {r.text[:300]}")
                if i >= WARMUP:
                    node_cpu += cpu_seconds(pid) - node_before
                    for name, value in zip(times, (bare_s, e2e_s, bare_cpu, hub_cpu), strict=True):
                        times[name].append(value)
            times["node_cpu"] = [node_cpu / REPETITIONS]
    return times


def main() -> None:
    print(
        f"one-node query end to end (hub API -> node process over HTTP -> result) vs the bare "
        f"DP release, interleaved, median of {REPETITIONS} after {WARMUP} warm-up "
        "(count by group x sex)"
    )
    header = f"{'rows':>10} {'bare ms':>8} {'e2e ms':>8} {'ratio':>6}"
    print(f"{header} {'CPU ms: bare':>12} {'hub':>6} {'node':>6}")
    targets: list[str] = []
    with tempfile.TemporaryDirectory(prefix="sauti-bench-overhead-") as tmp:
        for rows in ROWS:
            (node, *_) = demo_nodes(rows=rows)
            t = asyncio.run(run_rows(Path(tmp), node, rows))
            bare, e2e = (statistics.median(t[k]) * 1000 for k in ("bare", "e2e"))
            bare_cpu, hub_cpu = (statistics.median(t[k]) * 1000 for k in ("bare_cpu", "hub_cpu"))
            node_cpu = t["node_cpu"][0] * 1000
            ratio = e2e / bare
            print(
                f"{rows:>10,} {bare:>8.1f} {e2e:>8.1f} {ratio:>5.2f}x "
                f"{bare_cpu:>12.1f} {hub_cpu:>6.1f} {node_cpu:>6.1f}",
                flush=True,
            )
            if rows in LIMITS:
                name, limit = LIMITS[rows]
                verdict = "PASS" if ratio <= limit else "FAIL"
                targets.append(f"target {name}: {ratio:.2f} (limit {limit:g}) {verdict}")
    for line in sorted(targets, key=lambda line: "100k" in line):
        print(line)


if __name__ == "__main__":
    main()
