"""Benchmark: BinaryDAM.recall (numba back end) against a straightforward numba loop and the float64 floor of the
spin checks it performs; one and two threads, with and without a CPU hog.

    python benchmarks/binary_recall.py [--repeats 5] [--torch-cues 10]

Cases: the KH16 appendix setting (N = 100, K = 2000, ReP_5 from random starts) and the MNIST size (N = 784,
K = 1000, ReP_3 from memories with 20% of the bits flipped). Within one run, interleaved, repeated (medians of the
per-repeat ratios):

- ours:     ``recall(backend="numba")`` on one thread (``torch.set_num_threads(1)``).
- plain:    :func:`straightforward`, the per-cue loop a numba user writes from the update on docs/reference.md §3
            (per spin, the field from the overlaps with F(a + 1) - F(a - 1); the overlaps kept up to date on a
            flip), ``@njit`` as it comes; "plain+fm" is the same loop with ``fastmath=True``. Same cues, same sweep
            orders (drawn as recall draws them); the final states are checked equal to ours, bit for bit.
- torch:    ``recall(backend="torch")`` (the batched PyTorch sweep) on ``--torch-cues`` cues.
- floor:    the float64 floor of the spin checks ours performs: one K-long float64 dot product per check (sweeps x
            N per cue), timed by a minimal numba kernel that does only those dot products (the faster of int8
            columns widened to float64 and float64 columns). Also printed: the same multiply-adds at the float64
            matrix-product rate measured now (a floor no dot product reaches: it reuses operands from registers).
- threads:  ours on 1 and on 2 threads (wall time), on the machine as it is and with a CPU hog (a busy-loop
            process in its own session, pinned to core 0) running.

One-thread figures are the process's CPU time (on a shared machine, wall time also counts other jobs' turns on
the core); the thread comparisons are wall time. Timings on a shared machine are noisy: read the ratios of one run.
The first numba call of a process compiles or loads the kernels from numba's cache (reported as "first call").
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numba
import numpy as np
import torch
from timing import hog

from assocmem.engines import BinaryDAM
from assocmem.engines.binary import sweeps, threads
from assocmem.engines.binary.sweeps import random_orders

CASES = [
    # (name, N, K, degree of ReP, flip (None: random starts), cues, cues for the thread comparison)
    ("KH16 appendix: N=100 K=2000 ReP_5, random starts", 100, 2000, 5, None, 1000, 4000),
    ("MNIST size: N=784 K=1000 ReP_3, 20% flipped", 784, 1000, 3, 0.2, 200, 800),
]


def straightforward(degree: int, fastmath: bool = False):
    """The plain per-cue KH16 loop for F(x) = max(x, 0)^degree: one asynchronous sweep of every active cue."""

    @numba.njit(fastmath=fastmath)
    def F(x):
        return max(x, 0.0) ** degree

    @numba.njit(fastmath=fastmath)
    def sweep(xi_t, states, m, active, orders, changed):
        for c in range(active.shape[0]):
            s, mb = states[active[c]], m[active[c]]
            moved = False
            for i in orders[c]:
                x = xi_t[i]
                h = 0.0
                for mu in range(x.shape[0]):
                    a = mb[mu] - x[mu] * s[i]  # the overlap without spin i
                    h += x[mu] * (F(a + 1.0) - F(a - 1.0))
                if h * s[i] < 0:
                    s[i] = -s[i]
                    for mu in range(x.shape[0]):
                        mb[mu] += 2.0 * x[mu] * s[i]
                    moved = True
            changed[c] = moved

    return sweep


def plain_recall(sweep, xi: np.ndarray, cues: np.ndarray, seed: int, max_steps: int = 100) -> np.ndarray:
    """Sweeps until none changes, the orders drawn per sweep for the active cues exactly as recall draws them."""
    gen = torch.Generator().manual_seed(seed)
    xi_t = np.ascontiguousarray(xi.T)
    states = cues.copy()
    m = states @ xi.T
    active = np.arange(len(states))
    for _ in range(max_steps):
        if len(active) == 0:
            break
        orders = random_orders(len(active), xi.shape[1], gen, torch.device("cpu")).numpy()
        changed = np.zeros(len(active), dtype=np.bool_)
        sweep(xi_t, states, m, active, orders, changed)
        active = active[changed]
    return states


@numba.njit(fastmath=True)
def fp64_dots(xi_t, v, count):
    """``count`` dot products of rows of ``xi_t`` (int8 widened, or float64) with the float64 vector ``v``."""
    total = 0.0
    for t in range(count):
        x = xi_t[t % xi_t.shape[0]]
        h = 0.0
        for mu in range(x.shape[0]):
            h += x[mu] * v[mu]
        total += h
    return total


def floor_seconds(xi_t8: np.ndarray, checks: int) -> float:
    v = np.random.default_rng(0).standard_normal(xi_t8.shape[1])
    best = float("inf")
    for cols in (xi_t8, xi_t8.astype(np.float64)):
        fp64_dots(cols, v, 10)
        best = min(best, timed(lambda cols=cols: fp64_dots(cols, v, checks))[0])
    return best


def fma_rate() -> float:
    """float64 multiply-adds per second of a 1024^3 matrix product (current torch threads)."""
    a = torch.randn(1024, 1024, dtype=torch.float64)
    a @ a
    return 1024**3 / timed(lambda: a @ a)[0]


class EngineClock:
    """Wall time spent in the engine's numba loops (every one runs through ``threads.run_units``): the part of a
    recall this benchmark's thread comparison is about, beside the rest of recall (cues, orders, bookkeeping)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._run = threads.run_units

        def run_units(*args, **kwargs):
            start = time.perf_counter()
            try:
                return self._run(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - start

        threads.run_units = run_units


def timed(fn, threads: int = 1, clock=time.process_time):
    """``(seconds, fn())`` on ``threads`` torch (and so numba) threads: the process's CPU time by default (one
    thread: what the work costs, not how long other jobs held the core), wall time for the thread comparisons."""
    torch.set_num_threads(threads)
    start = clock()
    out = fn()
    return clock() - start, out


def med(values) -> float:
    return statistics.median(values)


def run_case(name, n, k, degree, flip, count, thread_count, repeats, torch_cues, engine):
    two_threads = engine is not None
    gen = torch.Generator().manual_seed(0)
    xi = torch.randint(0, 2, (k, n), generator=gen).double() * 2 - 1
    if flip is None:
        many = torch.randint(0, 2, (thread_count, n), generator=gen).double() * 2 - 1
    else:
        idx = torch.randint(0, k, (thread_count,), generator=gen)
        many = torch.where(torch.rand(thread_count, n, generator=gen) < flip, -xi[idx], xi[idx])
    cues = many[:count]
    dam = BinaryDAM(xi, "rectified", n=degree)
    plain = {fm: straightforward(degree, fm) for fm in (False, True)}
    xi_np, cues_np = xi.numpy(), cues.numpy()

    def ours(seed, cues=cues):
        return dam.recall(cues, generator=torch.Generator().manual_seed(seed), backend="numba")

    torch.set_num_threads(1)
    start = time.perf_counter()
    ours(0, cues[:20])
    first = time.perf_counter() - start
    for sweep in plain.values():
        plain_recall(sweep, xi_np, cues_np[:2], 0)
    print(f"\n{name}: {count} cues (exact tables: {dam.exact}; first numba call {first:.2f} s)")
    rows: dict[str, list[float]] = {}
    tally = {"checks": 0, "flips": 0, "float64": 0}
    for rep in range(repeats):
        sweeps.numba_tally.update(checks=0, flips=0, float64=0)
        t_ours, result = timed(lambda rep=rep: ours(rep))
        for key in tally:
            tally[key] += sweeps.numba_tally[key]
        checks = int(result.steps.sum()) * n
        for fm, sweep in plain.items():
            t, states = timed(lambda sweep=sweep, rep=rep: plain_recall(sweep, xi_np, cues_np, rep))
            assert np.array_equal(states, result.states.numpy()), "the plain loop disagrees with recall"
            rows.setdefault("plain+fm" if fm else "plain", []).append(t / t_ours)
        t_torch, _ = timed(
            lambda rep=rep: dam.recall(
                cues[:torch_cues], generator=torch.Generator().manual_seed(rep), backend="torch"
            )
        )
        rows.setdefault("torch", []).append((t_torch / torch_cues) / (t_ours / count))
        floor = floor_seconds(dam._transposed(True).numpy(), checks)
        rows.setdefault("floor", []).append(t_ours / floor)
        rows.setdefault("fma", []).append(t_ours / (checks * k / fma_rate()))
        rows.setdefault("ours ms", []).append(1e3 * t_ours / count)
        rows.setdefault("floor ms", []).append(1e3 * floor / count)
        if two_threads:
            for loaded in (False, True):
                t, inner = {}, {}
                with hog(loaded):
                    for threads_ in (1, 2) if rep % 2 == 0 else (2, 1):
                        before = engine.seconds
                        t[threads_] = timed(lambda rep=rep: ours(rep, many), threads_, time.perf_counter)[0]
                        inner[threads_] = engine.seconds - before
                label = "loaded" if loaded else "as is"
                rows.setdefault(f"T1/T2 {label}", []).append(t[1] / t[2])
                rows.setdefault(f"engine T1/T2 {label}", []).append(inner[1] / inner[2])
                for threads_ in (1, 2):
                    rows.setdefault(f"T{threads_} ms {label}", []).append(1e3 * t[threads_] / thread_count)
                    rest = 1e3 * (t[threads_] - inner[threads_])
                    rows.setdefault(f"T{threads_} rest {label}", []).append(rest)
        torch.set_num_threads(1)
    per_cue = {key: tally[key] / (count * repeats) for key in tally}
    print(
        f"  mean sweeps {float(result.steps.double().mean()):.2f}; per cue {per_cue['checks']:.0f} spin checks, "
        f"{per_cue['flips']:.1f} flips; {tally['float64'] / max(tally['checks'], 1):.2e} of the checks decided "
        f"in float64 (the float32 filter left them)"
    )
    print(
        f"  one thread, per cue: ours {med(rows['ours ms']):.4f} ms; float64 floor of its checks "
        f"{med(rows['floor ms']):.4f} ms -> ours {med(rows['floor']):.2f}x the floor "
        f"({med(rows['fma']):.1f}x the same multiply-adds at the float64 matrix-product rate)"
    )
    print(
        f"  speed-up of ours over: plain numba loop {med(rows['plain']):.1f}x, the same with fastmath "
        f"{med(rows['plain+fm']):.1f}x, recall(backend='torch') {med(rows['torch']):.0f}x   "
        f"(per-repeat plain: {', '.join(f'{v:.1f}' for v in rows['plain'])})"
    )
    if two_threads:
        for label in ("as is", "loaded"):
            ratios, inner = rows[f"T1/T2 {label}"], rows[f"engine T1/T2 {label}"]
            print(
                f"  threads, {label} ({'a hog on core 0' if label == 'loaded' else 'no hog'}), {thread_count} cues: "
                f"1 thread {med(rows[f'T1 ms {label}']):.4f} ms/cue, 2 threads {med(rows[f'T2 ms {label}']):.4f} "
                f"ms/cue\n    time(1 thread) / time(2 threads): the numba loops median {med(inner):.2f}, min "
                f"{min(inner):.2f} ({', '.join(f'{v:.2f}' for v in inner)}); the whole recall median "
                f"{med(ratios):.2f}, min {min(ratios):.2f} ({', '.join(f'{v:.2f}' for v in ratios)})\n"
                f"    recall outside the numba loops (cue checks and conversions, sweep orders, bookkeeping): "
                f"{med(rows[f'T1 rest {label}']):.1f} ms on 1 thread, {med(rows[f'T2 rest {label}']):.1f} ms on 2"
            )


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--torch-cues", type=int, default=10, help="cues for the PyTorch back end (slow)")
    args = parser.parse_args()
    engine = EngineClock() if (os.cpu_count() or 1) >= 2 else None
    print(
        f"numba {numba.__version__}, torch {torch.__version__}, {os.cpu_count()} cores, load average "
        f"{os.getloadavg()[0]:.2f} at the start; {args.repeats} interleaved repeats, medians"
    )
    for case in CASES:
        run_case(*case, args.repeats, args.torch_cues, engine)
    print(f"\nload average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
