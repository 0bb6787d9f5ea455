"""Benchmark: BinaryDAM.recall against a straightforward per-cue NumPy implementation of the same KH16 update.

Both run in the same process on the same cues with the same sweep orders (drawn exactly as recall draws them), so
the final states must agree bit for bit; the script checks that and prints per-cue times and their ratios:

- numpy:        per cue, per spin: a = m - xi_i sigma_i; h = sum(F(a + xi_i) - F(a - xi_i)); overlaps m kept
                up to date on a flip (O(K)): the KH16 update (docs/reference.md §3) written directly in NumPy.
- numpy+table:  the same with F(a + 1) - F(a - 1) read from a lookup table (a tuned NumPy baseline).
- torch:        recall(backend="torch"): the batched pure-PyTorch sweep (any device), one spin of every cue a step.
- numba:        recall(backend="numba"): the fused kernel, cues in parallel (torch.get_num_threads() threads).

Run: .venv/bin/python benchmarks/binary_recall.py [--repeats 3] [--threads T]. The first numba call of a process
compiles the kernel or loads it from numba's cache (reported as "first call"); set NUMBA_CACHE_DIR to an empty
folder to measure a cold compile. Timings on a shared machine are noisy: compare the ratios of one run.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

from assocmem.engines import BinaryDAM
from assocmem.engines.binary.sweeps import random_orders

CONFIGS = [
    # (name, N, K, F, n, flip or None for random starts, cues for numba, torch, numpy)
    ("KH16 appendix: N=100 K=2000 x^3, random starts", 100, 2000, "power", 3, None, 2000, 200, 6),
    ("MNIST size: N=784 K=1000 ReP_3, 20% flipped", 784, 1000, "rectified", 3, 0.2, 400, 40, 2),
]


def numpy_recall(xi, cues, F, max_sweeps, seed, table=False):
    """Per-cue NumPy loop of the KH16 update, sweep orders drawn like recall's (one batch draw per sweep)."""
    gen = torch.Generator().manual_seed(seed)
    n = xi.shape[1]
    xi_t = np.ascontiguousarray(xi.T)
    states = cues.copy()
    m = states @ xi.T
    d_table = F(np.arange(-n, n + 1) + 1.0) - F(np.arange(-n, n + 1) - 1.0)  # D(a) at index a + n
    active = np.arange(len(cues))
    for _ in range(max_sweeps):
        if len(active) == 0:
            break
        orders = random_orders(len(active), n, gen, torch.device("cpu")).numpy()
        still = []
        for c, b in enumerate(active):
            s, mb, moved = states[b], m[b], False
            for i in orders[c]:
                col = xi_t[i]
                a = mb - col * s[i]
                if table:
                    h = col @ d_table[(a + n).astype(np.int64)]
                else:
                    h = np.sum(F(a + col) - F(a - col))
                if h * s[i] < 0:
                    s[i] = -s[i]
                    mb += 2 * s[i] * col
                    moved = True
            if moved:
                still.append(b)
        active = np.array(still, dtype=np.int64)
    return states


def per_cue(seconds, count):
    return seconds / count


def run_config(name, n, k, F, degree, flip, n_numba, n_torch, n_numpy, repeats):
    gen = torch.Generator().manual_seed(0)
    xi = torch.randint(0, 2, (k, n), generator=gen).double() * 2 - 1
    if flip is None:
        cues = torch.randint(0, 2, (n_numba, n), generator=gen).double() * 2 - 1
    else:
        idx = torch.randint(0, k, (n_numba,), generator=gen)
        cues = torch.where(torch.rand(n_numba, n, generator=gen) < flip, -xi[idx], xi[idx])
    dam = BinaryDAM(xi, F, n=degree)
    f_np = (lambda x: x**degree) if F == "power" else (lambda x: np.maximum(x, 0.0) ** degree)
    print(f"\n{name}  (exact tables: {dam.exact})")
    start = time.perf_counter()
    dam.recall(cues[:2], generator=torch.Generator().manual_seed(1), backend="numba")
    print(f"  first numba call in this process (compile or cache load): {time.perf_counter() - start:.2f} s")
    ratios = []
    for rep in range(repeats):
        times = {}
        t0 = time.perf_counter()
        ours = dam.recall(cues, generator=torch.Generator().manual_seed(rep), backend="numba")
        times["numba"] = per_cue(time.perf_counter() - t0, n_numba)
        t0 = time.perf_counter()
        dam.recall(cues[:n_torch], generator=torch.Generator().manual_seed(rep), backend="torch")
        times["torch"] = per_cue(time.perf_counter() - t0, n_torch)
        small = dam.recall(cues[:n_numpy], generator=torch.Generator().manual_seed(rep), backend="numba")
        for label, table in (("numpy", False), ("numpy+table", True)):
            t0 = time.perf_counter()
            states = numpy_recall(xi.numpy(), cues[:n_numpy].numpy(), f_np, 100, rep, table=table)
            times[label] = per_cue(time.perf_counter() - t0, n_numpy)
            assert np.array_equal(states, small.states.numpy()), f"{label} disagrees with recall"
        sweeps = float(ours.steps.double().mean())
        checks = float(ours.steps.double().sum()) * n * k  # multiply-adds of the spin checks alone
        a = torch.randn(1500, 1500, dtype=torch.float64)
        t0 = time.perf_counter()
        a @ a
        mm_rate = 1500**3 / (time.perf_counter() - t0)
        kernel_rate = checks / (times["numba"] * n_numba)
        line = "  ".join(f"{key} {1e3 * val:8.3f} ms" for key, val in times.items())
        ratio = {key: times[key] / times["numba"] for key in ("numpy", "numpy+table", "torch")}
        ratios.append(ratio)
        print(
            f"  run {rep + 1}: per cue {line}  (mean sweeps {sweeps:.2f}) | numba is "
            + ", ".join(f"{val:.0f}x {key}" for key, val in ratio.items())
        )
        print(
            f"         spin-check multiply-adds {kernel_rate / 1e9:.2f} G/s = {kernel_rate / mm_rate:.2f} x the "
            f"float64 matmul rate measured now ({mm_rate / 1e9:.2f} G/s)"
        )
    for key in ("numpy", "numpy+table", "torch"):
        vals = [r[key] for r in ratios]
        print(
            f"  speed-up over {key:<12}: min {min(vals):6.1f}x  median {sorted(vals)[len(vals) // 2]:6.1f}x  "
            f"max {max(vals):6.1f}x"
        )


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch (and so numba) threads")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(
        f"torch threads {torch.get_num_threads()}, load average {os.getloadavg()[0]:.2f} "
        f"on {os.cpu_count()} cores; all four give identical final states (checked)"
    )
    for config in CONFIGS:
        run_config(*config, args.repeats)


if __name__ == "__main__":
    main()
