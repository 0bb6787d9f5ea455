"""What the retrieval and layer benchmarks share: interleaved repeated medians, the peak memory, the machine's load."""

from __future__ import annotations

import os
import resource
import statistics
import time
from collections.abc import Callable


def interleaved(fns: dict[str, Callable[[], object]], repeat: int) -> dict[str, float]:
    """Median seconds of each function, the functions run in turn ``repeat`` times (after one warm-up each), so that
    load from other processes hits them alike."""
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    return {name: statistics.median(ts) for name, ts in times.items()}


def peak_resident_bytes() -> int:
    """This process's peak resident memory: VmHWM (reset by exec, unlike ru_maxrss), else ru_maxrss."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def load() -> str:
    """The machine's load averages (1, 5, 15 minutes) and its core count: how busy the run was."""
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.1f} {five:.1f} {fifteen:.1f} on {os.cpu_count()} cores"
