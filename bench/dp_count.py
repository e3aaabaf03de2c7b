"""Benchmark: exact polars grouped count vs Sauti's DP count over 1M rows (prints the ratio)."""

import statistics
import time
from pathlib import Path

import numpy as np
import polars as pl

from contracts.v1 import Column, DatasetContract, Level, PrivacyUnit, QuerySpec
from node.privacy.engine import compute_release

ROWS = 1_000_000
REPETITIONS = 9
DATA = Path(__file__).parent / ".data" / "dp_count_1m.parquet"
LEVELS = {
    "sex": ("female", "male", "other"),
    "district": ("d01", "d02", "d03", "d04", "d05", "d06", "d07"),
    "group": ("dalit", "adivasi", "muslim", "none"),
    "disability": ("yes", "no"),
}
DIMS = ("sex", "district", "group")


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


def generate() -> None:
    """Deterministic rows stored the way a node stores them (Enum dims, Int64 numbers)."""
    if DATA.exists():
        return
    DATA.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(20261127)
    columns: dict[str, pl.Series] = {
        name: pl.Series(name, np.array(levels)[rng.integers(0, len(levels), ROWS)]).cast(
            pl.Enum(list(levels))
        )
        for name, levels in LEVELS.items()
    }
    columns["age"] = pl.Series("age", rng.integers(15, 95, ROWS), dtype=pl.Int64)
    pl.DataFrame(columns).write_parquet(DATA)


def exact() -> None:
    pl.scan_parquet(DATA).group_by(list(DIMS)).agg(pl.len()).collect()


def dp(spec: QuerySpec, dataset: DatasetContract) -> None:
    compute_release(
        data=pl.scan_parquet(DATA),
        contract=dataset,
        spec=spec,
        rho=spec.rho,
        min_cell_size=10,
        max_ci_relative_width=None,
    )


def main() -> None:
    generate()
    dataset = contract()
    spec = QuerySpec(agreement_id="bench", dataset="bench", measure="count", group_by=DIMS, rho=0.1)
    exact()
    dp(spec, dataset)  # warm both paths (file cache, OpenDP library load)
    exact_times, dp_times = [], []
    for _ in range(REPETITIONS):
        # Interleaved so that both paths see the same machine state.
        start = time.perf_counter()
        exact()
        exact_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        dp(spec, dataset)
        dp_times.append(time.perf_counter() - start)
    exact_ms = statistics.median(exact_times) * 1000
    dp_ms = statistics.median(dp_times) * 1000
    cells = 1
    for dim in DIMS:
        cells *= len(LEVELS[dim])
    print(f"rows: {ROWS:,}  dims: {', '.join(DIMS)}  cells: {cells}  repetitions: {REPETITIONS}")
    print(f"exact polars grouped count (median): {exact_ms:8.1f} ms")
    print(f"Sauti DP count, compute_release (median): {dp_ms:8.1f} ms")
    print(f"ratio DP / exact: {dp_ms / exact_ms:.2f} (target < 2)")


if __name__ == "__main__":
    main()
