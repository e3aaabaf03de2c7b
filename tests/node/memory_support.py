"""Peak resident memory of this process, read from /proc (Linux), for memory regression tests.

Writing "5" to /proc/self/clear_refs resets the peak (VmHWM) to the current RSS, so the
growth of the peak across a block is what that block needed at most, whatever it freed
before returning. No timing is involved.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

MB = 1024 * 1024


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise LookupError(field)


@dataclass
class PeakGrowth:
    bytes: int = 0


@contextmanager
def peak_rss_growth() -> Iterator[PeakGrowth]:
    """How far the peak RSS rose above the RSS at the start of the block (bytes)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pytest.skip("no /proc/self/clear_refs to reset the peak RSS on this system")
    start = _status_kb("VmRSS")
    growth = PeakGrowth()
    yield growth
    growth.bytes = (_status_kb("VmHWM") - start) * 1024
