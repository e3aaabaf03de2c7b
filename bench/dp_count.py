"""Benchmark: exact polars vs Sauti's DP engine vs OpenDP's Context API (prints a table).

Three queries over generated survey rows (Enum dims, Int64 age, as a node stores them):
a grouped count (7 districts), a grouped mean of age (7 districts) and a 3-dim cross-tab
count (sex x district x group, 84 cells); at 1M and 10M rows. Each figure is the median of
REPETITIONS interleaved runs; every run of each engine reads the Parquet file afresh.

OpenDP's Context API: OpenDP 0.16's polars route needs polars 1.36.1 and refuses the
installed polars 2.1 (it cannot deserialise the plan), so the comparison uses its vector
route: the column(s) read into Python lists, `count_by_categories` + Gaussian for counts
(the cross-tab over the joined key of the three dims), and per-district `count` and
`clamp`+`sum` Gaussian queries for the mean; every release searches its noise scale. It is
timed at 1M rows only (linear in rows and already seconds). Peak memory is the
`ru_maxrss` of a child process that runs only Sauti's three queries at 10M rows.
"""

import itertools
import json
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import opendp.prelude as dp
import polars as pl

from contracts.v1 import Column, DatasetContract, Level, PrivacyUnit, QuerySpec
from node.privacy.engine import compute_release

ROWS = (1_000_000, 10_000_000)
CONTEXT_ROWS = 1_000_000
REPETITIONS = 7
DATA = Path(__file__).parent / ".data"
LEVELS = {
    "sex": ("female", "male", "other"),
    "district": ("d01", "d02", "d03", "d04", "d05", "d06", "d07"),
    "group": ("dalit", "adivasi", "muslim", "none"),
    "disability": ("yes", "no"),
}
DIMS = ("sex", "district", "group")
RHO = 0.1
QUERIES: dict[str, dict[str, object]] = {
    "grouped count": {"measure": "count", "group_by": ("district",)},
    "grouped mean": {"measure": "mean", "column": "age", "group_by": ("district",)},
    "3-dim cross-tab": {"measure": "count", "group_by": DIMS},
}


def path(rows: int) -> Path:
    return DATA / f"dp_count_{rows // 1_000_000}m.parquet"


def contract() -> DatasetContract:
    return DatasetContract(
        name="bench",
        version=1,
        title="Benchmark survey",
        columns=(
            *(
                Column(name=name, type="categorical", levels=tuple(Level(code=c) for c in levels))
                for name, levels in LEVELS.items()
            ),
            Column(name="age", type="integer", role="measure", lower=0, upper=120),
        ),
        privacy=PrivacyUnit(max_contributions=1),
    )


def generate(rows: int) -> Path:
    """Deterministic rows stored the way a node stores them (Enum dims, Int64 numbers)."""
    target = path(rows)
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(20261127)
    columns: dict[str, pl.Series] = {
        name: pl.Series(name, np.array(levels)[rng.integers(0, len(levels), rows)]).cast(
            pl.Enum(list(levels))
        )
        for name, levels in LEVELS.items()
    }
    columns["age"] = pl.Series("age", rng.integers(15, 95, rows), dtype=pl.Int64)
    pl.DataFrame(columns).write_parquet(target)
    return target


def exact(name: str, data: Path) -> Callable[[], object]:
    spec = QUERIES[name]
    by = list(spec["group_by"])  # type: ignore[call-overload]
    agg = pl.col("age").mean() if spec["measure"] == "mean" else pl.len()
    return lambda: pl.scan_parquet(data).group_by(by).agg(agg).collect()


def sauti(name: str, data: Path) -> Callable[[], object]:
    spec = QuerySpec.model_validate(
        {"agreement_id": "bench", "dataset": "bench", "rho": RHO, **QUERIES[name]}
    )
    dataset = contract()
    return lambda: compute_release(
        data=pl.scan_parquet(data),
        contract=dataset,
        spec=spec,
        rho=RHO,
        min_cell_size=10,
        max_ci_relative_width=None,
        source=data,  # as the node passes its stored file
    )


def _context(data: object, domain: dp.Domain, split: int) -> dp.Context:
    return dp.Context.compositor(
        data=data,
        privacy_unit=dp.unit_of(contributions=1),
        privacy_loss=dp.loss_of(rho=RHO),
        split_evenly_over=split,
        domain=domain,
    )


def context_api(name: str, data: Path) -> Callable[[], object]:
    spec = QUERIES[name]
    by = list(spec["group_by"])  # type: ignore[call-overload]

    def counts() -> object:
        frame = pl.read_parquet(data, columns=by)
        keys = frame.select(pl.concat_str([pl.col(d).cast(pl.String) for d in by], separator="|"))
        categories = ["|".join(combo) for combo in itertools.product(*(LEVELS[d] for d in by))]
        ctx = _context(keys.to_series().to_list(), dp.vector_domain(dp.atom_domain(T=str)), 1)
        query = ctx.query().count_by_categories(
            categories=categories, MO="L2Distance<i32>", TOA="i32"
        )
        return query.gaussian().release()

    def means() -> object:
        frame = pl.read_parquet(data, columns=["district", "age"])
        out = {}
        for district, part in frame.partition_by("district", as_dict=True).items():
            ages = part["age"].cast(pl.Float64).to_list()
            ctx = _context(ages, dp.vector_domain(dp.atom_domain(T=float, nan=False)), 2)
            n = ctx.query().count().gaussian().release()
            s = ctx.query().clamp((0.0, 120.0)).sum().gaussian().release()
            out[district] = s / max(n, 1)
        return out

    return means if spec["measure"] == "mean" else counts


def timed(fn: Callable[[], object], repetitions: int) -> float:
    fn()  # warm: file cache, OpenDP library load
    times = []
    for _ in range(repetitions):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def child(rows: int, *, with_context: bool) -> None:
    """Time every query at `rows` (exact and Sauti interleaved) and print JSON lines."""
    data = path(rows)
    for name in QUERIES:
        pairs: dict[str, list[float]] = {"exact": [], "sauti": []}
        fns = {"exact": exact(name, data), "sauti": sauti(name, data)}
        for fn in fns.values():
            fn()
        for _ in range(REPETITIONS):
            for engine, fn in fns.items():
                start = time.perf_counter()
                fn()
                pairs[engine].append(time.perf_counter() - start)
        row = {
            "rows": rows,
            "query": name,
            "exact_ms": statistics.median(pairs["exact"]) * 1000,
            "sauti_ms": statistics.median(pairs["sauti"]) * 1000,
        }
        if with_context:
            row["context_ms"] = timed(context_api(name, data), 1)
        print(json.dumps(row), flush=True)


def memory_child(rows: int) -> None:
    """Only Sauti's three queries, then this process's peak resident memory."""
    for name in QUERIES:
        sauti(name, path(rows))()
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"peak_mib": peak_kib / 1024}), flush=True)


def run_child(*args: str) -> list[dict[str, float]]:
    result = subprocess.run(
        [sys.executable, __file__, *args], capture_output=True, text=True, check=True
    )
    return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]


def main() -> None:
    for rows in ROWS:
        generate(rows)
    print(f"Sauti DP vs exact polars vs OpenDP Context API (rho {RHO}, median of {REPETITIONS})")
    header = f"{'rows':>11} {'query':<16} {'exact ms':>9} {'Sauti ms':>9} {'ratio':>6}"
    print(header + f" {'Context ms':>11} {'Context/Sauti':>13}")
    for rows in ROWS:
        for row in run_child("--child", str(rows), str(int(rows == CONTEXT_ROWS))):
            ratio = row["sauti_ms"] / row["exact_ms"]
            line = (
                f"{rows:>11,} {row['query']:<16} {row['exact_ms']:>9.1f} "
                f"{row['sauti_ms']:>9.1f} {ratio:>6.2f}"
            )
            if "context_ms" in row:
                line += f" {row['context_ms']:>11.0f} {row['context_ms'] / row['sauti_ms']:>12.0f}x"
            print(line)
    (memory,) = run_child("--memory", str(ROWS[-1]))
    print(f"peak memory, Sauti's three queries at {ROWS[-1]:,} rows: {memory['peak_mib']:.0f} MiB")
    print("targets: ratio <= 1.3 at 1M; Context API >= 10x slower; 10M within 2 GiB")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(int(sys.argv[2]), with_context=sys.argv[3] == "1")
    elif len(sys.argv) > 1 and sys.argv[1] == "--memory":
        memory_child(int(sys.argv[2]))
    else:
        main()
