"""Why numba runs on its workqueue threads and ``assocmem demo`` on one: small PyTorch work after a binary recall.

    python benchmarks/demo_threads.py            # 5 repetitions of each setting

Each setting runs in a fresh process (numba and OpenMP read their settings when they start): the demo's
microscopic network (48 sprites, 256 neurons, relax(method="stiff")) is timed on its own, then again right after
a ClassicalHopfield recall of the same cues. Printed: the median of each and their ratio. Recorded in
docs/demo.md.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys

CHILD = r"""
import json, sys, time, torch
torch.set_num_threads(int(sys.argv[1]))
from assocmem.data import flip_bits, sprites
from assocmem.laboratory.demo_models import demo_models
patterns = sprites(48).flatten(1)
gen = torch.Generator().manual_seed(0)
cues = flip_bits(patterns, 0.2, generator=gen)
models = {m.key: m for m in demo_models()}
def timed(key):
    start = time.perf_counter()
    models[key].recall(patterns, cues.clone(), gen)
    return time.perf_counter() - start
timed("microscopic")  # warm-up
alone = timed("microscopic")
timed("classical")
after = timed("microscopic")
print(json.dumps([alone, after]))
"""

SETTINGS = {
    "NUMBA_THREADING_LAYER=omp (numba's default), 2 threads": ({"NUMBA_THREADING_LAYER": "omp"}, 2),
    "NUMBA_THREADING_LAYER=omp (numba's default), 1 thread": ({"NUMBA_THREADING_LAYER": "omp"}, 1),
    "omp with OMP_WAIT_POLICY=passive, 1 thread": (
        {"NUMBA_THREADING_LAYER": "omp", "OMP_WAIT_POLICY": "passive"},
        1,
    ),
    "workqueue (assocmem's choice), 2 threads": ({}, 2),
    "workqueue (assocmem's choice), 1 thread (the demo)": ({}, 1),
}


def main(repeat: int = 5) -> None:
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    for name, (extra, threads) in SETTINGS.items():
        env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "NUMBA_THREADING_LAYER")}
        env.update(extra)
        runs = [
            json.loads(
                subprocess.run(
                    [sys.executable, "-c", CHILD, str(threads)],
                    env=env,
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout
            )
            for _ in range(repeat)
        ]
        alone = statistics.median(r[0] for r in runs)
        after = statistics.median(r[1] for r in runs)
        print(
            f"{name:<55} microscopic alone {alone * 1e3:7.1f} ms, after a binary recall {after * 1e3:7.1f} ms "
            f"({after / alone:5.1f}x; {repeat} runs, medians)"
        )
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5)
