"""Time and peak memory to import a 1,000,000-row CSV, beside a bare polars read + write of it.

Run with `make bench` or `.venv/bin/python bench/import_csv.py [ROWS]`. Every measured run
(the import, the polars baselines, and even writing the CSV) happens in its own freshly
spawned interpreter, which reports its own peak resident memory: VmHWM from
/proc/self/status on Linux (the high-water mark of that process's address space, which exec
resets, so the parent's memory at spawn time cannot leak into the figure), else ru_maxrss.
Resident memory counts polars' native allocations, which tracemalloc does not see.
"""

import multiprocessing as mp
import resource
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import polars as pl

from contracts.v1 import Column, DatasetContract, Level, PrivacyUnit

ROWS = 1_000_000
TARGET_PEAK_MB = 300
SEXES = ("female", "male", "third_gender")
DISTRICTS = tuple(f"district_{i:02d}" for i in range(20))
GROUPS = ("dalit", "janajati", "madhesi", "muslim", "other")
Outcome = tuple[float, float, float]
SAMPLE_SECONDS = 0.005


def contract() -> DatasetContract:
    def levels(codes: tuple[str, ...]) -> tuple[Level, ...]:
        return tuple(Level(code=c) for c in codes)

    return DatasetContract(
        name="bench",
        version=1,
        title="Import benchmark",
        columns=(
            Column(name="respondent", type="string", role="unit_key"),
            Column(name="name", type="string", role="identifier"),
            Column(name="sex", type="categorical", levels=levels(SEXES)),
            Column(name="district", type="categorical", levels=levels(DISTRICTS)),
            Column(name="group", type="categorical", levels=levels(GROUPS)),
            Column(name="age", type="integer", role="measure", lower=0, upper=120),
            Column(name="income", type="number", role="measure", lower=0, upper=1e6),
            Column(name="interviewed", type="datetime", role="other"),
            Column(name="notes", type="string", role="free_text"),
        ),
        privacy=PrivacyUnit(unit_key="respondent", max_contributions=1),
    )


def _status_mb(field: str) -> float | None:
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _peak_mb() -> float:
    """Peak resident memory of this process so far, in MB (VmHWM, else ru_maxrss)."""
    peak = _status_mb("VmHWM")
    if peak is not None:
        return peak
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 1024 / (1024 if sys.platform == "darwin" else 1)  # bytes on macOS


class AnonSampler:
    """The largest RssAnon seen, sampled every few ms (Linux only; NaN elsewhere).

    Resident memory also counts pages of files polars memory-maps (the CSV it scans), which
    the kernel can drop at will; anonymous memory is what the process itself allocated.
    """

    def __init__(self) -> None:
        self.peak = float("nan") if _status_mb("RssAnon") is None else 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _status_mb("RssAnon") or 0.0)
            self._stop.wait(SAMPLE_SECONDS)

    def __enter__(self) -> "AnonSampler":
        if self.peak == self.peak:  # not NaN
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
            self.peak = max(self.peak, _status_mb("RssAnon") or 0.0)


def _write_csv(path: str, rows_text: str, out: "mp.Queue[Outcome]") -> None:
    rows = int(rows_text)
    rng = np.random.default_rng(7)
    started = time.perf_counter()
    pl.DataFrame(
        {
            "respondent": [f"r{i:07d}" for i in range(rows)],
            "name": [f"Person {i}" for i in range(rows)],
            "sex": np.array(SEXES)[rng.integers(0, 3, rows)],
            "district": np.array(DISTRICTS)[rng.integers(0, 20, rows)],
            "group": np.array(GROUPS)[rng.integers(0, 5, rows)],
            "age": rng.integers(15, 95, rows),
            "income": rng.uniform(0, 50000, rows).round(2),
            "interviewed": ["2024-03-01T10:00:00"] * rows,
            "notes": ["पानीको समस्या छ"] * rows,
        }
    ).write_csv(path)
    out.put((time.perf_counter() - started, _peak_mb(), float("nan")))


def _idle(out: "mp.Queue[Outcome]") -> None:
    """An interpreter that imported the node's dataset code and did nothing: the floor."""
    from node.datasets import service  # noqa: F401, PLC0415

    out.put((0.0, _peak_mb(), _status_mb("RssAnon") or float("nan")))


def _import(home: str, path: str, out: "mp.Queue[Outcome]") -> None:
    from node.datasets import service  # noqa: PLC0415  (imported in the child only)
    from node.settings import NodeSettings  # noqa: PLC0415

    settings = NodeSettings(home=Path(home), import_max_bytes=1 << 31)
    with AnonSampler() as anon:
        started = time.perf_counter()
        service.import_file(
            home=Path(home), path=Path(path), contract=contract(), settings=settings
        )
        seconds = time.perf_counter() - started
    out.put((seconds, _peak_mb(), anon.peak))


def _eager(path: str, out: "mp.Queue[Outcome]") -> None:
    """The bare baseline: polars reads the whole CSV into memory and writes Parquet."""
    with AnonSampler() as anon:
        started = time.perf_counter()
        pl.read_csv(path).write_parquet(Path(path).with_suffix(".eager.parquet"))
        seconds = time.perf_counter() - started
    out.put((seconds, _peak_mb(), anon.peak))


def _streaming(path: str, out: "mp.Queue[Outcome]") -> None:
    """The bare streaming baseline: scan_csv straight into sink_parquet, no checks."""
    with AnonSampler() as anon:
        started = time.perf_counter()
        pl.scan_csv(path).sink_parquet(Path(path).with_suffix(".stream.parquet"))
        seconds = time.perf_counter() - started
    out.put((seconds, _peak_mb(), anon.peak))


def _child(target: Callable[..., None], *args: str) -> Outcome:
    ctx = mp.get_context("spawn")
    queue: mp.Queue[Outcome] = ctx.Queue()
    proc = ctx.Process(target=target, args=(*args, queue))
    proc.start()
    outcome = queue.get()
    proc.join()
    if proc.exitcode != 0:
        raise SystemExit(f"{target.__name__} failed with exit code {proc.exitcode}")
    return outcome


def main() -> None:
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else ROWS
    with tempfile.TemporaryDirectory() as tmp:
        csv = Path(tmp) / "survey.csv"
        _child(_write_csv, str(csv), str(rows))
        size_mb = csv.stat().st_size / 1e6
        runs = {
            "sauti import (validate + store)": _child(_import, str(Path(tmp) / "home"), str(csv)),
            "polars read_csv + write_parquet": _child(_eager, str(csv)),
            "polars scan_csv + sink_parquet": _child(_streaming, str(csv)),
            "idle interpreter (imports only)": _child(_idle),
        }
    print(f"import of {rows:,} CSV rows ({size_mb:.0f} MB), one fresh process per run")
    print(f"{'run':<34} {'seconds':>8} {'peak RSS MB':>12} {'peak anon MB':>13}")
    for label, (seconds, peak, anon) in runs.items():
        print(f"{label:<34} {seconds:>8.2f} {peak:>12.0f} {anon:>13.0f}")
    seconds, peak, _ = runs["sauti import (validate + store)"]
    eager_s, eager_mb, _ = runs["polars read_csv + write_parquet"]
    ratio = f"{seconds / eager_s:.1f}x the time, {peak / eager_mb:.2f}x the peak RSS"
    print(f"import / eager polars: {ratio}")
    verdict = "within" if peak <= TARGET_PEAK_MB else "OVER"
    print(f"import peak RSS {peak:.0f} MB: {verdict} the {TARGET_PEAK_MB} MB target")


if __name__ == "__main__":
    main()
