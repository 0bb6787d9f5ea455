"""Speed of assocmem.retrieve against plain PyTorch softmax(beta Q K^T) V of the same shapes, in the same run.

    python benchmarks/retrieval.py                  # B=64, d=256, K=65536: one step, three steps, per-item memories
    python benchmarks/retrieval.py --huge           # also K=10^7, d=64, B=1 (2.56 GB of memories): time, peak memory
    python benchmarks/retrieval.py --per-item-k 8192  # smaller per-item memories (B*K*d floats) on small machines

Targets (docs/benchmarks.md): one step within 1.2x of the plain baseline; three steps within 4.5x of one step;
per-item memories (B, K, d) within 1.5x of the plain batched baseline. Timings are medians of --repeat runs,
with the baseline and the candidate interleaved so that load from other processes hits both alike.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import time

import torch

import assocmem as am


def median_time(fn, repeat: int) -> float:
    fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def paired(base, cand, repeat: int) -> tuple[float, float]:
    """Median times of two functions measured alternately."""
    base(), cand()
    tb, tc = [], []
    for _ in range(repeat):
        for fn, acc in ((base, tb), (cand, tc)):
            t = time.perf_counter()
            fn()
            acc.append(time.perf_counter() - t)
    return statistics.median(tb), statistics.median(tc)


def main_cases(b: int, d: int, k: int, per_item_k: int, repeat: int, beta: float) -> None:
    gen = torch.Generator().manual_seed(0)
    mem = torch.randn(k, d, generator=gen) / d**0.5
    q = torch.randn(b, d, generator=gen) / d**0.5

    def plain():
        return torch.softmax(beta * q @ mem.T, dim=-1) @ mem

    with torch.inference_mode():
        tb, t1 = paired(plain, lambda: am.retrieve(mem, q, beta), repeat)
        _, t3 = paired(lambda: am.retrieve(mem, q, beta), lambda: am.retrieve(mem, q, beta, steps=3), repeat)
        t1b = median_time(lambda: am.retrieve(mem, q, beta), repeat)
        print(f"shared memory B={b} d={d} K={k}: plain {tb * 1e3:.1f} ms, retrieve {t1 * 1e3:.1f} ms "
              f"-> ratio {t1 / tb:.3f} (target <= 1.2)")  # fmt: skip
        print(
            f"three steps {t3 * 1e3:.1f} ms vs one step {t1b * 1e3:.1f} ms -> ratio {t3 / t1b:.3f} (target <= 4.5)"
        )
        mem = None  # free the shared memory before the per-item one
        per = torch.randn(b, per_item_k, d, generator=gen) / d**0.5

        def plain_batched():
            return (
                torch.softmax(beta * torch.bmm(q.unsqueeze(1), per.transpose(1, 2)), dim=-1)
                .bmm(per)
                .squeeze(1)
            )

        tb, tp = paired(plain_batched, lambda: am.retrieve(per, q, beta), repeat)
        print(f"per-item memories ({b}, {per_item_k}, {d}): plain batched {tb * 1e3:.1f} ms, retrieve "
              f"{tp * 1e3:.1f} ms -> ratio {tp / tb:.3f} (target <= 1.5)")  # fmt: skip


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


def huge_case(k: int, d: int) -> None:
    """Run in its own process so that the peak resident memory is this case's alone."""
    with torch.inference_mode():
        mem = torch.empty(k, d)
        gen = torch.Generator().manual_seed(0)
        for start in range(0, k, 1 << 16):  # fill in pieces: no temporary as large as the memory
            stop = min(start + (1 << 16), k)
            mem[start:stop] = torch.randn(stop - start, d, generator=gen) / d**0.5
        q = mem[123_456:123_457] + 0.01 * torch.randn(1, d, generator=gen)
        base = peak_resident_bytes()
        t = time.perf_counter()
        out = am.retrieve(mem, q, 200.0)
        elapsed = time.perf_counter() - t
        peak = peak_resident_bytes()
        size = mem.numel() * mem.element_size()
        err = float((out - mem[123_456]).abs().max())
        print(f"huge memory K={k} d={d} B=1: memory matrix {size / 2**30:.2f} GiB, retrieve {elapsed:.2f} s, "
              f"peak resident {peak / 2**30:.2f} GiB (before retrieve {base / 2**30:.2f} GiB, extra "
              f"{(peak - base) / 2**20:.0f} MiB), max |retrieved - stored| = {err:.2e}")  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--dim", type=int, default=256)
    p.add_argument("--memories", type=int, default=65536)
    p.add_argument("--per-item-k", type=int, default=65536)
    p.add_argument("--repeat", type=int, default=7)
    p.add_argument("--beta", type=float, default=1.0)
    p.add_argument("--huge", action="store_true", help="also run K=10^7, d=64, B=1 in a subprocess")
    p.add_argument("--huge-only", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, float32")
    if a.huge_only:
        huge_case(10_000_000, 64)
        return
    main_cases(a.batch, a.dim, a.memories, a.per_item_k, a.repeat, a.beta)
    if a.huge:
        subprocess.run([sys.executable, __file__, "--huge-only"], check=True)


if __name__ == "__main__":
    main()
