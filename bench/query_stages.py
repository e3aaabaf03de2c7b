"""Where one query's time goes: a stage timeline of bench/query_overhead.py's end-to-end path.

The same setup as query_overhead (the hub app in this process, `sauti node serve` in another
over localhost HTTP, SQLite at both), with timing wrappers installed in both processes at
start-up (module attributes replaced: the apps' code is unchanged). Every span is stamped with
`time.perf_counter` (CLOCK_MONOTONIC: one clock for both processes), so each query's spans at
the hub and at the node fall into one timeline. Prints, per stage, the median start (ms after
the analyst's POST) and the median duration over the queries; `commit` rows are the time
inside SQLAlchemy's commit (the fsync of SQLite's WAL, synchronous=FULL). Not a target bench:
a profiling aid, not in `make bench`.

    PYTHONDONTWRITEBYTECODE= .venv/bin/python bench/query_stages.py

Environment: BENCH_STAGES_ROWS (default 100000), BENCH_REPETITIONS (default 15),
BENCH_STAGES_PROFILE (a path: cProfile stats of the node's query handler thread, written there),
BENCH_STAGES_PROFILE_LOOP (a path: the same for the node's event loop thread: HTTP, routing),
BENCH_STAGES_PROFILE_CPU=1 (both profiles count thread CPU time, not wall time: no waits for
the GIL, the disk or polars' threads).
"""

import asyncio
import contextlib
import cProfile
import functools
import importlib
import inspect
import json
import os
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

LOOP_WARMUP = 10  # requests the node serves before its event loop is profiled
PROFILE_TIMER = time.thread_time if os.environ.get("BENCH_STAGES_PROFILE_CPU") == "1" else None
Span = tuple[str, float, float]
SPANS: list[Span] = []
now = time.perf_counter

# (module, attribute, label): looked up where the caller looks them up.
NODE_TARGETS = [
    ("node.queries.service", "verify_request", "node: verify hub signature"),
    ("node.agreements.service", "honoured_terms", "node: agreement lookup"),
    ("node.datasets.service", "load", "node: dataset load (contract)"),
    ("node.queries.service", "accept", "node: accept (all checks)"),
    ("node.ledger.service", "reserve", "node: ledger reserve (statements)"),
    ("node.queries.service", "audit_accepted", "node: audit accepted (3 entries)"),
    ("node.privacy.engine", "measure_exact", "node: DP exact pass (polars)"),
    ("node.queries.service", "_start_exact", "node: DP exact pass: plan, collect started"),
    ("node.privacy.engine", "_entry_vectors", "node: DP exact pass: collected, placed"),
    ("node.privacy.engine", "release_exact", "node: DP noise + cells"),
    ("contracts.signing", "sign", "node: sign release"),
    ("node.ledger.service", "store_release", "node: store release (statement)"),
    ("node.audit.service", "append", "node: audit release_stored"),
    ("node.api.queries", "_answer", "node: handler (thread)"),
]
HUB_TARGETS = [
    ("hub.deps", "authenticate", "hub: token lookup"),
    ("hub.deps", "authenticate_on", "hub: token lookup"),
    ("hub.queries.run", "submit", "hub: submit (checks, plan, sign, record, dispatch)"),
    ("hub.queries.service", "prepare_query", "hub: prepare (plan, sign, record)"),
    ("contracts.signing", "sign", "hub: sign request"),
    ("hub.queries.push", "post_with_retries", "hub: delivery"),
    ("hub.queries.push", "post_node", "hub: HTTP exchange"),
    ("hub.queries.push", "_verified", "hub: verify release"),
    ("hub.queries.service", "record_outcomes", "hub: record answer (statements)"),
    ("hub.queries.service", "finished_result", "hub: finished? / combine"),
    ("hub.queries.run", "wait_for", "hub: wait for result"),
    ("hub.queries.recorder", "_record", "hub: recorder's run (thread)"),
    ("hub.queries.service", "completed_here", "hub: result completed here?"),
    ("hub.queries.service", "result_body", "hub: response body"),
    ("hub.queries.run", "wait_event", "hub: submitter waits for a signal"),
]


def _wrap(module: str, attribute: str, label: str) -> None:
    owner = importlib.import_module(module)
    original = getattr(owner, attribute, None)
    if original is None:  # another version of the code (an A/B copy): nothing to time
        return
    wrapper: Callable[..., Any]
    if inspect.iscoroutinefunction(original):

        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            start = now()
            try:
                return await original(*args, **kwargs)
            finally:
                SPANS.append((label, start, now()))

    else:

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            start = now()
            try:
                return original(*args, **kwargs)
            finally:
                SPANS.append((label, start, now()))

    setattr(owner, attribute, functools.wraps(original)(wrapper))


def _wrap_commits(side: str) -> None:
    """Every database commit: the driver's COMMIT (SQLite's WAL fsync)."""
    from sqlalchemy.engine.default import DefaultDialect  # noqa: PLC0415

    original: Callable[[DefaultDialect, Any], None] = DefaultDialect.do_commit

    def do_commit(self: DefaultDialect, dbapi_connection: Any) -> None:
        start = now()
        try:
            original(self, dbapi_connection)
        finally:
            SPANS.append((f"{side}: COMMIT (driver)", start, now()))

    DefaultDialect.do_commit = do_commit  # type: ignore[method-assign]


def install(side: str) -> None:
    for module, attribute, label in NODE_TARGETS if side == "node" else HUB_TARGETS:
        _wrap(module, attribute, label)
    _wrap_commits(side)


def node_main() -> None:
    """The node process: `sauti node serve` with the wrappers, spans appended to a file after
    every HTTP request (so the bench reads them as it goes)."""
    home, port, out = Path(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])
    install("node")
    import node.app  # noqa: PLC0415

    if profile := os.environ.get("BENCH_STAGES_PROFILE"):
        _profile_handler(Path(profile))
    from sauti import node_cli  # noqa: PLC0415

    create = node.app.create_app
    loop = os.environ.get("BENCH_STAGES_PROFILE_LOOP")
    loop_profiler = _profiler()
    served = [0]

    def create_app(settings: Any) -> Any:
        app = create(settings)

        async def timed(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            start = now()
            try:
                await app(scope, receive, send)
            finally:
                SPANS.append(("node: ASGI request (uvicorn inside)", start, now()))
                with out.open("a") as file:
                    file.writelines(json.dumps(span) + "\n" for span in SPANS)
                SPANS.clear()
                served[0] += 1
                if loop and served[0] >= LOOP_WARMUP:  # after the setup and warm-up requests
                    loop_profiler.dump_stats(loop)  # (which stops it)
                    loop_profiler.enable()

        return timed

    node.app.create_app = create_app
    node_cli.serve(home=home, host="127.0.0.1", port=port)


def _profiler() -> cProfile.Profile:
    return cProfile.Profile() if PROFILE_TIMER is None else cProfile.Profile(PROFILE_TIMER)


def _profile_handler(path: Path) -> None:
    """cProfile the node's query handler (its thread only), stats written after each query."""
    import node.api.queries as module  # noqa: PLC0415

    profiler = _profiler()
    original = module._answer

    calls = [0]

    def answer(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        if calls[0] <= 2:  # the warm-up queries (first compilations)
            return original(*args, **kwargs)
        profiler.enable()
        try:
            return original(*args, **kwargs)
        finally:
            profiler.disable()
            profiler.dump_stats(path)

    module._answer = answer


def _median(values: list[float]) -> float:
    return statistics.median(values) * 1000 if values else float("nan")


async def run(work: Path, rows: int, repetitions: int) -> None:
    import httpx  # noqa: PLC0415
    import query_overhead  # noqa: PLC0415

    from sauti.demo.data import demo_nodes  # noqa: PLC0415

    out = work / "node-spans.jsonl"

    @contextlib.contextmanager
    def served_node(home: Path) -> Iterator[tuple[str, int]]:
        bench = Path(__file__).parent
        command = [
            sys.executable,
            "-c",
            f"import sys; sys.path.insert(0, {str(bench)!r}); "
            "import query_stages; query_stages.node_main()",
        ]
        with query_overhead.served_node(home, command=command, extra=[str(out)]) as served:
            yield served

    install("hub")
    queries: list[tuple[float, float]] = []

    async def ask(post: Callable[[], Awaitable[httpx.Response]]) -> httpx.Response:
        start = now()
        response = await post()
        queries.append((start, now()))
        return response

    (node, *_) = demo_nodes(rows=rows)
    await query_overhead.run_rows(work, node, rows, serve=served_node, ask=ask)
    node_spans: list[Span] = [
        (str(label), float(start), float(stop))
        for label, start, stop in (json.loads(line) for line in out.read_text().splitlines())
    ]
    spans = [*SPANS, *node_spans]
    starts: dict[str, list[float]] = defaultdict(list)
    durations: dict[str, list[float]] = defaultdict(list)
    counts: dict[str, int] = defaultdict(int)
    totals: list[float] = []
    measured = queries[-repetitions:]
    for begin, end in measured:
        totals.append(end - begin)
        mine = [s for s in spans if begin <= s[1] <= end]
        first: dict[str, float] = {}
        summed: dict[str, float] = defaultdict(float)
        for label, start, stop in mine:
            first.setdefault(label, start - begin)
            summed[label] += stop - start
            counts[label] += 1
        for label, offset in first.items():
            starts[label].append(offset)
            durations[label].append(summed[label])
    print(f"one query end to end at {rows:,} rows: median of {len(measured)} (ms)")
    print(f"{'stage':<56} {'n/query':>7} {'start':>7} {'ms':>7}")
    order = sorted(starts, key=lambda label: statistics.median(starts[label]))
    for label in order:
        per_query = counts[label] / len(measured)
        print(
            f"{label:<56} {per_query:>7.1f} {_median(starts[label]):>7.2f} "
            f"{_median(durations[label]):>7.2f}"
        )
    print(f"{'end to end (the analyst POST)':<56} {'':>7} {'':>7} {_median(totals):>7.2f}")


def main() -> None:
    rows = int(os.environ.get("BENCH_STAGES_ROWS", "100000"))
    repetitions = int(os.environ.get("BENCH_REPETITIONS", "15"))
    os.environ["BENCH_REPETITIONS"] = str(repetitions)
    with tempfile.TemporaryDirectory(prefix="sauti-bench-stages-") as tmp:
        asyncio.run(run(Path(tmp), rows, repetitions))


if __name__ == "__main__":
    main()
