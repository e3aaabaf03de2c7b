"""Benchmark: accuracy of secure aggregation against central and per-node noise (issue #13).

k nodes (k = 1, 5, 20) hold disjoint parts of one pooled synthetic dataset (BENCH_ROWS rows
each: a categorical `region` with 5 levels, a yes/no `urban`, a bounded numeric `income`).
Three queries by region (count; share of urban = yes; sum of income), each at the same rho,
answered three ways and compared with the exact pooled values:

- central: the engine's release over the pooled rows (`compute_release`, suppress=False),
- per-node: each node's own release, combined as the hub does (hub/queries/combine.py:
  counts and sum numerators add; a share is the summed numerators over summed denominators),
- secure: each node's exact vectors plus its share of the noise (`noisy_shares`, rank by
  node id, `members=k`, `collusion=t`), masked with pairwise masks from fresh X25519 keys
  per repetition; the hub adds the masked vectors (`unmasked_sum`) and reads the cells as
  `hub.queries.secure_combine.secure_cells` does (count: the total; share: N / (N + O); sum:
  granularity x centred total + center x count).

`compute_release` is `measure_exact` (the polars pass) followed by `release_exact` (the
noise): the exact pass is run once per node and the noise drawn afresh every repetition, as
tests/node/test_privacy_statistics.py does. Each figure is an RMSE over every repetition and
cell; the table shows per-node / central and secure / central. Prints a table and a final
PASS/FAIL line for the target "secure <= 1.05 x central at k = 20 (rho 0.02, t 0)", and
exits 1 on FAIL.

Then the latency cost of secure mode: the same count query through the real hub app and real
node apps (bench/federation.py), per-node against secure, for k = 2, 5, 20.

Environment: BENCH_REPS (default 1000; the ratios' sampling error is about 1/sqrt(2 x reps x
cells), under 1% here), BENCH_ROWS (rows per node, default 2000), BENCH_RHOS
(comma-separated, default 0.02; the sweep in docs/privacy.md used 0.01,0.02,0.05,0.1),
BENCH_SIZES (default 1,5,20), BENCH_COLLUSION (default 0,1), BENCH_LATENCY_SIZES (default
2,5,20), BENCH_LATENCY_ROWS (default 10000), BENCH_LATENCY_QUERIES (default 7).
"""

import asyncio
import math
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

# bench/ is this script's folder: bench/federation.py runs the real hub and nodes.
import federation
import numpy as np
import polars as pl
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from contracts.accuracy import share_estimate
from contracts.v1 import Cell, Column, DatasetContract, Level, PrivacyUnit, QuerySpec
from hub.queries.secure_combine import unmasked_sum
from node.privacy import engine, secure
from sauti.demo.data import demo_nodes


def _floats(name: str, default: str) -> tuple[float, ...]:
    return tuple(float(v) for v in os.environ.get(name, default).split(","))


def _ints(name: str, default: str) -> tuple[int, ...]:
    return tuple(int(v) for v in os.environ.get(name, default).split(","))


REPS = int(os.environ.get("BENCH_REPS", "1000"))
ROWS = int(os.environ.get("BENCH_ROWS", "2000"))
RHOS = _floats("BENCH_RHOS", "0.02")
LATENCY_SIZES = _ints("BENCH_LATENCY_SIZES", "2,5,20")
LATENCY_ROWS = int(os.environ.get("BENCH_LATENCY_ROWS", "10000"))
LATENCY_QUERIES = int(os.environ.get("BENCH_LATENCY_QUERIES", "7"))
SIZES = _ints("BENCH_SIZES", "1,5,20")
COLLUSION = _ints("BENCH_COLLUSION", "0,1")
# The shipped assessment template's per-query cost; the target is checked there.
TARGET_RHO = 0.02
TARGET_SIZE = 20
TARGET_RATIO = 1.05
REGIONS = ("r1", "r2", "r3", "r4", "r5")
INCOME = (0.0, 500.0)
MEASURES = ("count", "share", "sum")
SPECS: dict[str, dict[str, object]] = {
    "count": {"measure": "count"},
    "share": {"measure": "share", "column": "urban", "value": "yes"},
    "sum": {"measure": "sum", "column": "income"},
}


def contract() -> DatasetContract:
    return DatasetContract(
        name="bench",
        version=1,
        title="Accuracy benchmark",
        columns=(
            Column(name="region", type="categorical", levels=tuple(Level(code=r) for r in REGIONS)),
            Column(name="urban", type="categorical", levels=(Level(code="yes"), Level(code="no"))),
            Column(name="income", type="number", role="measure", lower=INCOME[0], upper=INCOME[1]),
        ),
        privacy=PrivacyUnit(max_contributions=1),
    )


def pooled(rows: int) -> pl.DataFrame:
    """Deterministic rows, skewed across regions, stored as a node stores them."""
    rng = np.random.default_rng(20261128)
    weights = np.asarray([0.35, 0.25, 0.2, 0.15, 0.05])
    region = rng.choice(len(REGIONS), size=rows, p=weights)
    urban = rng.random(rows) < 0.2 + 0.12 * region
    income = np.clip(rng.lognormal(4.5, 0.6, rows) + 20 * region, *INCOME)
    return pl.DataFrame(
        {
            "region": pl.Series(np.asarray(REGIONS)[region]).cast(pl.Enum(REGIONS)),
            "urban": pl.Series(np.where(urban, "yes", "no")).cast(pl.Enum(["yes", "no"])),
            "income": pl.Series(income, dtype=pl.Float64),
        }
    )


def spec(measure: str, rho: float) -> QuerySpec:
    return QuerySpec.model_validate(
        {
            "agreement_id": "bench",
            "dataset": "bench",
            "group_by": ("region",),
            "rho": rho,
            **SPECS[measure],
        }
    )


def truth(measure: str, exact: engine.Exact) -> np.ndarray:
    """The exact cells from the exact components."""
    counts = np.asarray(exact.values["count"], dtype=np.float64)
    if measure == "share":
        ratio: np.ndarray = counts[0::2] / (counts[0::2] + counts[1::2])
        return ratio
    if measure == "sum":
        return np.asarray(exact.values["sum"], dtype=np.float64) + sum(INCOME) / 2 * counts
    return counts


def released(exact: engine.Exact) -> list[Cell]:
    computed = engine.release_exact(
        exact, min_cell_size=0, max_ci_relative_width=None, suppress=False
    )
    return list(computed.cells)


def central_cells(exact: engine.Exact) -> np.ndarray:
    cells = released(exact)
    return np.asarray([math.nan if c.estimate is None else c.estimate for c in cells])


def per_node_cells(measure: str, exacts: Sequence[engine.Exact]) -> np.ndarray:
    """Every node's own release, combined as hub/queries/combine.py combines them."""
    releases = [released(exact) for exact in exacts]

    def total(field: str) -> np.ndarray:
        parts = [[getattr(c, field) or 0.0 for c in cells] for cells in releases]
        summed: np.ndarray = np.asarray(parts, dtype=np.float64).sum(axis=0)
        return summed

    if measure == "count":
        return total("estimate")
    numerators = total("numerator")
    if measure == "sum":
        return numerators
    denominators = total("denominator")
    return np.asarray(
        [
            share_estimate(n, d) if d >= 1 else math.nan
            for n, d in zip(numerators, denominators, strict=True)
        ]
    )


@dataclass(frozen=True)
class SecureRun:
    cells: np.ndarray
    variance: float  # the planned noise variance of the count component


def secure_run(
    measure: str, exacts: Sequence[engine.Exact], *, rho: float, collusion: int, attempt: int
) -> SecureRun:
    """One attempt of secure aggregation: noisy shares, masked, added at the hub."""
    dataset = contract()
    members = len(exacts)
    keys = {f"node-{i:03d}": X25519PrivateKey.generate() for i in range(members)}
    peers = {node_id: key.public_key() for node_id, key in keys.items()}
    wire: dict[str, list[np.ndarray]] = {}
    shares: list[secure.Share] = []
    for rank, (node_id, exact) in enumerate(zip(sorted(keys), exacts, strict=True)):
        shares = secure.noisy_shares(
            exact,
            keys=exact.keys,
            contract=dataset,
            spec=exact.spec,
            rho=rho,
            rank=rank,
            members=members,
            collusion=collusion,
        )
        for share in shares:
            vector = secure.masked(
                share.values,
                node_id=node_id,
                private=keys[node_id],
                peers=peers,
                context=f"bench|{attempt}",
                component=share.name,
            )
            wire.setdefault(share.name, []).append(vector)
    totals = {name: unmasked_sum(vectors).astype(np.float64) for name, vectors in wire.items()}
    counts = totals["count"]
    if measure == "share":
        cells = np.asarray(
            [
                share_estimate(n, n + o) if n + o >= 1 else math.nan
                for n, o in zip(counts[0::2], counts[1::2], strict=True)
            ]
        )
    elif measure == "sum":
        cells = shares[1].granularity * totals["sum"] + sum(INCOME) / 2 * counts
    else:
        cells = counts
    plan = shares[0].plan
    return SecureRun(cells, plan.adders * plan.scale**2)


def rmse(errors: Sequence[np.ndarray]) -> float:
    stacked = np.concatenate(errors)
    return float(np.sqrt(np.nanmean(stacked**2)))


@dataclass(frozen=True)
class Row:
    rho: float
    measure: str
    size: int
    collusion: int
    central: float
    per_node: float
    secure: float
    planned: float  # sqrt of the planned count noise variance over the central count scale


def measure_rows(measure: str, size: int, rho: float, data: pl.DataFrame) -> list[Row]:
    dataset = contract()
    query = spec(measure, rho)
    pooled_exact = engine.measure_exact(data=data.lazy(), contract=dataset, spec=query, rho=rho)
    exacts = [
        engine.measure_exact(
            data=data.slice(i * ROWS, ROWS).lazy(), contract=dataset, spec=query, rho=rho
        )
        for i in range(size)
    ]
    exact = truth(measure, pooled_exact)
    central = rmse([central_cells(pooled_exact) - exact for _ in range(REPS)])
    per_node = rmse([per_node_cells(measure, exacts) - exact for _ in range(REPS)])
    count_scale = pooled_exact.plan.components[0].scale
    rows = []
    for t in COLLUSION:
        if t >= size and t > 0:
            continue
        runs = [
            secure_run(measure, exacts, rho=rho, collusion=t, attempt=rep) for rep in range(REPS)
        ]
        rows.append(
            Row(
                rho=rho,
                measure=measure,
                size=size,
                collusion=t,
                central=central,
                per_node=per_node / central,
                secure=rmse([run.cells - exact for run in runs]) / central,
                planned=math.sqrt(runs[0].variance) / count_scale,
            )
        )
    return rows


def latency_section() -> list[str]:
    """Secure against per-node query latency through the real hub app and real node apps
    (bench/federation.py's "real nodes" series: every node in this process, each over its
    own rows): p50 from POST /v1/queries to the complete result."""
    lines = [
        "",
        f"Latency through the real hub and {LATENCY_ROWS:,}-row real nodes in this process, "
        f"count by group x sex, {LATENCY_QUERIES} queries after warm-up (p50 ms):",
        f"{'k':>3} {'per-node':>9} {'secure':>7} {'ratio':>6}  secure CPU ms / query",
    ]
    base = demo_nodes(rows=LATENCY_ROWS)
    with tempfile.TemporaryDirectory(prefix="sauti-accuracy-") as tmp:
        for size in LATENCY_SIZES:
            p50: dict[str, float] = {}
            cpu = 0.0
            for aggregation in ("per_node", "secure"):
                latencies, cpu_times = asyncio.run(
                    federation.run_size(
                        Path(tmp),
                        base,
                        size,
                        replay=False,
                        aggregation=aggregation,
                        queries=LATENCY_QUERIES,
                    )
                )
                p50[aggregation] = 1000 * statistics.median(latencies)
                cpu = 1000 * statistics.median(cpu_times)
            lines.append(
                f"{size:>3} {p50['per_node']:>9.0f} {p50['secure']:>7.0f} "
                f"{p50['secure'] / p50['per_node']:>6.2f}  {cpu:.0f}"
            )
    return lines


def main() -> int:
    start = time.perf_counter()
    print(
        f"Accuracy of secure aggregation: RMSE over {REPS} repetitions x {len(REGIONS)} cells, "
        f"{ROWS:,} rows per node"
    )
    print("ratios are RMSE / central RMSE; 'planned' = sqrt(planned count noise) / central scale")
    header = (
        f"{'rho':>5} {'measure':<7} {'k':>3} {'t':>2} {'central RMSE':>13} "
        f"{'per-node':>9} {'secure':>7} {'planned':>8}"
    )
    print(header)
    rows: list[Row] = []
    for rho in RHOS:
        for measure in MEASURES:
            for size in SIZES:
                data = pooled(size * ROWS)
                for row in measure_rows(measure, size, rho, data):
                    rows.append(row)
                    print(
                        f"{row.rho:>5g} {row.measure:<7} {row.size:>3} {row.collusion:>2} "
                        f"{row.central:>13.4g} {row.per_node:>9.3f} {row.secure:>7.3f} "
                        f"{row.planned:>8.3f}",
                        flush=True,
                    )
    for line in latency_section():
        print(line)
    print(f"elapsed {time.perf_counter() - start:.0f} s")
    target = [r for r in rows if r.rho == TARGET_RHO and r.size == TARGET_SIZE and r.collusion == 0]
    if not target:
        print(f"target not measured (needs rho {TARGET_RHO}, k {TARGET_SIZE}, t 0): FAIL")
        return 1
    worst = max(target, key=lambda r: r.secure)
    verdict = "PASS" if worst.secure <= TARGET_RATIO else "FAIL"
    print(
        f"target: secure <= {TARGET_RATIO} x central at k = {TARGET_SIZE} (rho {TARGET_RHO}, "
        f"t 0): worst {worst.secure:.3f} ({worst.measure}): {verdict}"
    )
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
