"""Benchmark: the `sauti` command starts at once.

Each command imports only what it runs (sauti/lazy.py), so a steward's `sauti node ...`
pays for the node's command modules and not for the hub, WeasyPrint or the demo data.
Measured as the child process's CPU time (user + system, the median of several runs):
CPU, not wall time, so a loaded machine changes the figures little. Beside it, for scale:
a bare interpreter, `import typer`, and importing both apps and the demo (what every call
paid before the commands were loaded lazily; 3 runs). Target: 0.3 s each.

BENCH_CLI_RUNS sets the runs per command (default 7).
"""

import os
import resource
import statistics
import subprocess
import sys
from pathlib import Path

RUNS = int(os.environ.get("BENCH_CLI_RUNS", "7"))
LIMIT = 0.3
PYTHON = sys.executable
SAUTI = Path(PYTHON).with_name("sauti")
ENTRY = [str(SAUTI)] if SAUTI.exists() else [PYTHON, "-c", "from sauti.cli import app; app()"]
# What every call paid when each command module imported its side's services at the top.
EVERYTHING = "import hub.app, node.app, sauti.demo.run"


def cpu_seconds(args: list[str], runs: int = RUNS) -> float:
    """The median user + system CPU of running `args` to the end, over `runs` runs."""
    samples = []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        samples.append((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime))
    return statistics.median(samples)


def main() -> None:
    bare = cpu_seconds([PYTHON, "-c", "pass"])
    typer_only = cpu_seconds([PYTHON, "-c", "import typer"])
    everything = cpu_seconds([PYTHON, "-c", EVERYTHING], runs=3)
    help_cpu = cpu_seconds([*ENTRY, "--help"])
    node_cpu = cpu_seconds([*ENTRY, "node", "datasets", "--help"])
    print(f"CPU seconds, median of {RUNS} runs each")
    print(f"  python -c pass                    {bare:.3f}")
    print(f"  import typer                      {typer_only:.3f}")
    print(f"  import both apps and the demo     {everything:.3f}")
    print(f"  sauti --help                      {help_cpu:.3f}")
    print(f"  sauti node datasets --help        {node_cpu:.3f}")
    print(f"ratio sauti --help / import typer: {help_cpu / typer_only:.2f}")
    print(f"ratio everything / sauti --help: {everything / help_cpu:.1f}")
    print(f"ratio everything / sauti node datasets --help: {everything / node_cpu:.1f}")
    for name, value in (("cli-help-cpu-s", help_cpu), ("cli-node-help-cpu-s", node_cpu)):
        verdict = "PASS" if value <= LIMIT else "FAIL"
        print(f"target {name}: {value:.3f} (limit {LIMIT}) {verdict}")


if __name__ == "__main__":
    main()
