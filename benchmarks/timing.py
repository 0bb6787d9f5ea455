"""What the retrieval and layer benchmarks share: interleaved repeated medians, the peak memory, the machine's load."""

from __future__ import annotations

import contextlib
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator


def interleaved(fns: dict[str, Callable[[], object]], repeat: int) -> dict[str, float]:
    """Median seconds of each function, the functions run in turn ``repeat`` times (after one warm-up each), so that
    load from other processes hits them alike. Each name also gets ``name + " cpu"``: the median CPU time of this
    thread (on one thread, the time the work took whenever the machine let it run: robust to other processes
    taking the cores, not to their sharing the caches)."""
    for fn in fns.values():
        fn()
    wall: dict[str, list[float]] = {name: [] for name in fns}
    cpu: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            c, t = time.thread_time(), time.perf_counter()
            fn()
            wall[name].append(time.perf_counter() - t)
            cpu[name].append(time.thread_time() - c)
    out = {name: statistics.median(ts) for name, ts in wall.items()}
    out.update({name + " cpu": statistics.median(ts) for name, ts in cpu.items()})
    return out


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


def barrier_probe(repeat: int = 50) -> str:
    """How long one small parallel operation (``exp2_`` on 64 x 2048 floats, the size of a chunk of scores) takes on
    1 and on 2 threads right now: on a loaded machine the 2-thread figure is the wait at the operation's barrier for
    a thread the machine has descheduled, which every parallel operation pays (the thread count is restored)."""
    import torch

    before = torch.get_num_threads()
    s = torch.zeros(64, 2048)
    out = []
    for threads in (1, 2):
        torch.set_num_threads(threads)
        t = interleaved({"op": s.exp2_}, repeat)["op"]
        out.append(f"{threads} thread(s) {t * 1e6:.0f} us")
    torch.set_num_threads(before)
    return "one exp2_ on 64 x 2048 floats: " + ", ".join(out)


#: A busy loop pinned to core 0: the load of another job on one of the cores.
HOG = "import os\nos.sched_setaffinity(0, {0})\nwhile True:\n    pass\n"


@contextlib.contextmanager
def hog(on: bool) -> Iterator[None]:
    """With ``on``, a busy-loop process (its own session, pinned to core 0) runs inside the block."""
    proc = subprocess.Popen([sys.executable, "-c", HOG], start_new_session=True) if on else None
    try:
        if proc is not None:
            time.sleep(0.3)  # let it start spinning
        yield
    finally:
        if proc is not None:
            proc.kill()
            proc.wait()
