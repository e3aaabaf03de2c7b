"""Benchmark: queries per second at the hub with 1, 2 and 4 Celery worker processes (issue #25).

Real processes over real sockets, as deployed: `sauti hub serve --processes 2` and
`sauti hub worker --processes N` on a fresh PostgreSQL database and Redis (a key prefix of
this run's own), and 20 remote stub nodes (bench/stub_nodes.py, one process of their own)
answering after 100 ms with releases signed for each request. Closed-loop clients in this
process submit count queries (wait for each to complete, submit the next); throughput is the
queries completed per second in a window after a warm-up. The worker counts run one after the
other and 1 process again at the end, so drift of the (shared) machine's load shows.

Each round also prints what does not depend on the machine's load: CPU milliseconds per
completed query of the hub API processes, the worker processes, the stub fleet, this client
and the PostgreSQL backends of the hub's sessions (from /proc, over the whole round),
PostgreSQL commits per query (pg_stat_database of this run's database) and the mean number
of the hub's sessions waiting on a lock (sampled from pg_stat_activity every 0.2 s).

Ends with `target workers-2-vs-1: VALUE (limit 1.6) PASS|FAIL`: throughput with 2 worker
processes ÷ with 1 (the mean of both 1-process runs).

Environment: BENCH_QUICK=1 (shorter windows), BENCH_WINDOW_SECONDS, BENCH_CLIENTS (default
12), BENCH_NODES (20), BENCH_NODE_LATENCY_MS (100), BENCH_WORKER_CONCURRENCY (threads per
worker process, 32), BENCH_API_PROCESSES (2), BENCH_REDIS_URL (redis://127.0.0.1:6379/12),
BENCH_ROUNDS (the worker counts in order, 1,2,4,1; the target needs 1 and 2).
"""

import asyncio
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import migrations
import polars as pl
import psycopg
import stub_nodes

from contracts.v1 import SignedAgreement
from hub import home as hub_home
from hub.auth.tokens import create_token
from hub.db import init_db, make_engine
from sauti.demo.data import COUNTRIES, DemoNode, make_contract
from sauti.demo.run import ANALYST_ORG, SECRETARIAT, demo_terms

QUICK = os.environ.get("BENCH_QUICK") == "1"
WINDOW = float(os.environ.get("BENCH_WINDOW_SECONDS", "30" if QUICK else "90"))
CLIENTS = int(os.environ.get("BENCH_CLIENTS", "12"))
NODES = int(os.environ.get("BENCH_NODES", "20"))
LATENCY = float(os.environ.get("BENCH_NODE_LATENCY_MS", "100")) / 1000
CONCURRENCY = int(os.environ.get("BENCH_WORKER_CONCURRENCY", "32"))
API_PROCESSES = int(os.environ.get("BENCH_API_PROCESSES", "2"))
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/12")
ROUNDS = tuple(int(n) for n in os.environ.get("BENCH_ROUNDS", "1,2,4,1").split(","))
RHO = 0.01
SAUTI = str(Path(sys.executable).with_name("sauti"))
START_SECONDS = 300


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def process(
    args: list[str], *, env: dict[str, str], log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """`args` with its output in `log`; SIGTERM (then SIGKILL) at the end."""
    with log.open("ab") as out:
        proc = subprocess.Popen(
            args,
            env={**os.environ, "POLARS_MAX_THREADS": "1", **env},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            yield proc
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=90)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


TICKS = os.sysconf("SC_CLK_TCK")


def _own_cpu(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def tree_cpu(pid: int, *, skip: frozenset[int] = frozenset()) -> float:
    """CPU seconds used so far by `pid` and its live descendants (not those in `skip`)."""
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        if current in skip:
            continue
        total += _own_cpu(current)
        todo += _children(current)
    return total


class Probe:
    """Commits of one database and its sessions waiting on a lock, sampled in a thread."""

    def __init__(self, admin_url: str, database: str) -> None:
        self._conn = psycopg.connect(admin_url, autocommit=True)
        self._database = database
        self._samples: list[int] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def commits(self) -> int:
        row = self._conn.execute(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = %s", (self._database,)
        ).fetchone()
        return int(row[0]) if row else 0

    def backend_cpu(self) -> float:
        """CPU seconds so far of the database's server processes (its sessions' backends)."""
        pids = self._conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (self._database,),
        ).fetchall()
        return sum(_own_cpu(int(pid)) for (pid,) in pids)

    def _sample(self) -> None:
        with psycopg.connect(self._conn.info.dsn, autocommit=True) as conn:
            while not self._stop.wait(0.2):
                row = conn.execute(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = %s AND wait_event_type = 'Lock'",
                    (self._database,),
                ).fetchone()
                self._samples.append(int(row[0]) if row else 0)

    def start(self) -> None:
        self._samples, self._stop = [], threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def stop(self) -> float:
        """The mean number of sessions waiting on a lock since `start`."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        return statistics.mean(self._samples) if self._samples else 0.0

    def close(self) -> None:
        self._conn.close()


def usage(api: int, worker: int, probe: Probe) -> tuple[float, ...]:
    """CPU seconds so far of the API processes, the workers, the fleet, this client and the
    database's backends (those connected now: pooled sessions live through a round); the
    database's commits."""
    me = os.getpid()
    fleet = tree_cpu(me, skip=frozenset({api, worker})) - _own_cpu(me)
    return (
        tree_cpu(api),
        tree_cpu(worker),
        fleet,
        _own_cpu(me),
        probe.backend_cpu(),
        probe.commits(),
    )


def per_query(before: tuple[float, ...], after: tuple[float, ...], queries: int) -> str:
    api, workers, fleet, client, database, commits = (
        (a - b) / max(queries, 1) for a, b in zip(after, before, strict=True)
    )
    return (
        f"CPU ms per query: API {api * 1000:.1f}, workers {workers * 1000:.1f}, "
        f"stubs {fleet * 1000:.1f}, client {client * 1000:.1f}, "
        f"PostgreSQL {database * 1000:.1f}; commits per query {commits:.1f}"
    )


def wait_until(ready: Any, proc: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + START_SECONDS
    while not ready():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not start")
        time.sleep(0.3)


def healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/v1/health", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def enroll(
    url: str,
    admin: dict[str, str],
    nodes: list[stub_nodes.StubNode],
    urls: dict[str, str],
    *,
    hub_id: str,
) -> dict[str, Any]:
    """Register the stub nodes, agree on a dataset with all of them; the query spec."""
    contract = make_contract(COUNTRIES[0])
    with httpx.Client(base_url=url, timeout=120, headers=admin) as hub:
        for node in nodes:
            hub.post(
                "/v1/nodes", json=stub_nodes.registration(node, urls[node.node_id])
            ).raise_for_status()
        parties = [
            DemoNode(
                node_id=n.node_id,
                organisation=n.organisation,
                country=n.country,
                contract=contract,
                frame=pl.DataFrame(),
            )
            for n in nodes
        ]
        terms = demo_terms(nodes=parties, hub_id=hub_id).model_copy(update={"rho_budget": 1000.0})
        created = hub.post("/v1/agreements", json=terms.model_dump(mode="json"))
        created.raise_for_status()
        signed = SignedAgreement.model_validate(created.json()["agreement"])
        for node in nodes:
            signature = stub_nodes.agreement_signature(node, signed)
            hub.post(
                f"/v1/agreements/{terms.agreement_id}/signatures",
                json=signature.model_dump(mode="json"),
            ).raise_for_status()
    return {
        "agreement_id": terms.agreement_id,
        "dataset": contract.name,
        "measure": "count",
        "group_by": ["group", "sex"],
        "rho": RHO,
    }


async def load(
    url: str, analyst: dict[str, str], spec: dict[str, Any]
) -> tuple[int, float, float, int, int]:
    """Closed loop. The window opens once every client has completed its first query (the
    pipeline is full and the first contacts are made) and lasts WINDOW seconds: queries
    completed in it, its length, the median latency of those, failures, and the queries
    completed in all (the window's and the others)."""
    warmed = asyncio.Event()
    first_done = 0
    window: list[float] = []
    done: list[tuple[float, float]] = []
    failures = 0

    async def one(hub: httpx.AsyncClient) -> None:
        nonlocal failures
        start = time.monotonic()
        r = await hub.post("/v1/queries", json=spec, params={"wait": 120})
        body = r.json()
        while r.status_code in (200, 201, 202) and body.get("status") == "running":
            r = await hub.get(f"/v1/queries/{body['query_id']}", params={"wait": 30})
            body = r.json()
        if r.status_code not in (200, 201) or body.get("status") != "complete":
            failures += 1
        end = time.monotonic()
        done.append((end, end - start))

    async def client(hub: httpx.AsyncClient) -> None:
        nonlocal first_done
        await one(hub)
        first_done += 1
        if first_done == CLIENTS:
            window.append(time.monotonic())
            warmed.set()
        await warmed.wait()
        while time.monotonic() < window[0] + WINDOW:
            await one(hub)

    async with httpx.AsyncClient(base_url=url, timeout=300, headers=analyst) as hub:
        await asyncio.gather(*(client(hub) for _ in range(CLIENTS)))
    inside = [took for end, took in done if window[0] <= end < window[0] + WINDOW]
    median = statistics.median(inside) if inside else 0.0
    return len(inside), WINDOW, median, failures, len(done)


def loadavg() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f}, {five:.2f}, {fifteen:.2f} on {os.cpu_count()} cores"


def measure(
    count: int,
    *,
    hub: Path,
    env: dict[str, str],
    log: Path,
    api: int,
    url: str,
    probe: Probe,
    headers: dict[str, str],
    spec: dict[str, Any],
) -> tuple[int, float, float, str]:
    """One round with `count` worker processes: queries in the window, queries/s, p50, and
    what the round cost per query."""
    args = [SAUTI, "hub", "worker", "--home", str(hub), "--pool", "threads"]
    args += ["--concurrency", str(CONCURRENCY), "--processes", str(count)]
    with process(args, env=env, log=log) as worker:
        wait_until(
            lambda: log.read_text(errors="replace").count(" ready.") >= count,
            worker,
            f"{count} worker process(es)",
        )
        before = usage(api, worker.pid, probe)
        probe.start()
        completed, window, p50, failures, total = asyncio.run(load(url, headers, spec))
        waiting = probe.stop()
        after = usage(api, worker.pid, probe)
    if failures:
        raise RuntimeError(f"{failures} queries did not complete")
    details = f"{per_query(before, after, total)}; {waiting:.2f} sessions waiting on a lock (mean)"
    return completed, completed / window, p50, details


def main() -> None:
    user = migrations.postgres_user()
    if user is None:
        sys.exit("PostgreSQL on 127.0.0.1:5432 is required")
    run = f"bench-scale-{secrets.token_hex(4)}"
    print(
        f"queries/s at the hub: `sauti hub serve --processes {API_PROCESSES}` and "
        f"`sauti hub worker --processes N --concurrency {CONCURRENCY}` on PostgreSQL + Redis; "
        f"{NODES} stub nodes answering after {LATENCY * 1000:.0f} ms (own process); "
        f"{CLIENTS} closed-loop clients; a {WINDOW:.0f} s window once each has completed one query"
    )
    print(f"before: {loadavg()}", flush=True)
    with tempfile.TemporaryDirectory(prefix="sauti-bench-scale-out-") as tmp, ExitStack() as stack:
        work = Path(tmp)
        database_url, drop = migrations.fresh("postgres", user, work)
        stack.callback(drop)
        env = {
            "HUB_DATABASE_URL": database_url,
            "HUB_CELERY_BROKER_URL": REDIS_URL,
            "HUB_CELERY_KEY_PREFIX": f"{run}:",
            "HUB_CELERY_QUEUE": run,
            "HUB_REQUEST_TTL_SECONDS": "600",
        }
        hub_dir = work / "hub"
        identity = hub_home.init_home(hub_dir, hub_id="bench-hub")
        engine = make_engine(database_url)
        with init_db(engine)() as s:
            admin = create_token(session=s, name="a", organisation=SECRETARIAT, role="admin")
            analyst = create_token(session=s, name="n", organisation=ANALYST_ORG, role="analyst")
        engine.dispose()
        nodes = stub_nodes.stub_nodes(NODES)
        urls = stack.enter_context(
            stub_nodes.fleet(
                nodes, hub_jwk=identity.public_jwk, work=work / "fleet", latency=LATENCY
            )
        )
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        serve = [SAUTI, "hub", "serve", "--home", str(hub_dir), "--port", str(port)]
        serve += ["--processes", str(API_PROCESSES)]
        api = stack.enter_context(process(serve, env=env, log=work / "hub.log"))
        wait_until(lambda: healthy(url), api, "the hub")
        spec = enroll(
            url, {"Authorization": f"Bearer {admin}"}, nodes, urls, hub_id=identity.hub_id
        )
        analyst_headers = {"Authorization": f"Bearer {analyst}"}
        rates: list[tuple[int, float]] = []
        probe = Probe(migrations.ADMIN.format(user=user), database_url.rsplit("/", 1)[1])
        stack.callback(probe.close)
        print(f"{'workers':>8} {'queries':>8} {'q/s':>7} {'vs 1':>6} {'p50 s':>8}  load")
        for count in ROUNDS:
            log = work / f"worker-{count}-{len(rates)}.log"
            completed, rate, p50, details = measure(
                count,
                hub=hub_dir,
                env=env,
                log=log,
                api=api.pid,
                url=url,
                probe=probe,
                headers=analyst_headers,
                spec=spec,
            )
            rates.append((count, rate))
            first = rates[0][1] or float("nan")
            print(
                f"{count:>8} {completed:>8} {rate:>7.2f} {rate / first:>5.2f}x "
                f"{p50:>8.2f}  {os.getloadavg()[0]:.2f}\n{'':>8} {details}",
                flush=True,
            )
    one = statistics.mean(r for c, r in rates if c == 1) or float("nan")
    by_count = {c: r for c, r in rates if c != 1}
    print(f"after: {loadavg()}")
    if 4 in by_count:
        print(f"4 processes ÷ 1: {by_count[4] / one:.2f}")
    if 2 in by_count:
        ratio = by_count[2] / one
        verdict = "PASS" if ratio >= 1.6 else "FAIL"
        print(f"target workers-2-vs-1: {ratio:.2f} (limit 1.6) {verdict}")


if __name__ == "__main__":
    main()
