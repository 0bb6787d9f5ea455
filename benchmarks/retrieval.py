"""assocmem.retrieve against its matrix-multiply floor and plain PyTorch attention, in the same run.

    python benchmarks/retrieval.py              # B in (1, 64), d in (64, 256), K in (1e4, 1e5, 1e6), beta in (1, 200),
                                                # on 1 and 2 threads; three steps; per-item memories
    python benchmarks/retrieval.py --huge       # also K = 10^7, d = 64, B = 1 and 64 (2.56 GB of memories), one at a
                                                # time in its own process: time against the floor and peak memory
    python benchmarks/retrieval.py --threads 1 --memories 10000 --dims 64

The floor is the two matrix products the update needs, timed alone in the same run, the faster of: (a) as the
update does them, chunk by chunk (``x P_c^T`` into a cache-sized buffer, then ``W_c P_c``), and (b) whole (``x P^T``
into a B x K matrix, then ``W P``, when that matrix fits in 1 GiB). At B = 1 the products are matrix-vector
products, bound by the memory's bandwidth; ``read`` is then one product ``x P^T`` alone, one pass over the memory:
the least any retrieval costs (the chunked update reads the memory once from main memory and once from the cache).
``plain`` is ``torch.softmax(beta x P^T) P``. Every figure is a median of interleaved repeats (other processes'
load hits all alike); the load average is printed with each table. Target (issue 12): retrieve at most 1.25x the
floor; per-item memories at most 1.3x their two ``bmm``.
"""

from __future__ import annotations

import argparse
import itertools
import subprocess
import sys

import torch
from timing import barrier_probe, interleaved, load, peak_resident_bytes
from torch.nn import functional as F

import assocmem as am
from assocmem.engines.online_softmax import SPLIT_CHUNKS, chunk_rows, in_threads


def memory(k: int, d: int, seed: int = 0) -> torch.Tensor:
    """``(K, d)`` random patterns of norm about 1, filled in pieces (no temporary as large as the memory)."""
    mem = torch.empty(k, d)
    gen = torch.Generator().manual_seed(seed)
    for start in range(0, k, 1 << 16):
        stop = min(start + (1 << 16), k)
        mem[start:stop] = torch.randn(stop - start, d, generator=gen) / d**0.5
    return mem


def floors(mem: torch.Tensor, x: torch.Tensor) -> dict[str, object]:
    """The products of one update, without anything else: chunk by chunk as the update does them (on several
    threads, the memory split between them as the update splits it), and whole."""
    (k, d), b = mem.shape, x.shape[0]
    c = chunk_rows(b, k, d, mem.element_size())
    gen = torch.Generator().manual_seed(1)
    w_chunk = torch.softmax(torch.randn(b, c, generator=gen), -1)  # weights without subnormals

    def products(lo: int, hi: int) -> None:
        scores, out = torch.empty(b * c), torch.empty(b, d)
        for start in range(lo, hi, c):
            stop = min(start + c, hi)
            s = scores[: b * (stop - start)].view(b, stop - start)
            torch.matmul(x, mem[start:stop].T, out=s)
            torch.matmul(w_chunk[:, : stop - start], mem[start:stop], out=out)

    starts = list(range(0, k, c))
    split = max(1, min(torch.get_num_threads(), len(starts) // SPLIT_CHUNKS))
    bounds = [starts[len(starts) * i // split] for i in range(split)] + [k]
    parts = [lambda lo=lo, hi=hi: products(lo, hi) for lo, hi in itertools.pairwise(bounds)]
    fns: dict[str, object] = {
        "chunked": parts[0] if torch.get_num_threads() == 1 else lambda: in_threads(parts)
    }
    if b == 1:
        fns["read"] = lambda: x @ mem.T
    if b * k * 4 <= 1 << 30:
        w = torch.softmax(torch.randn(b, k, generator=gen), -1)
        fns["whole"] = lambda: (x @ mem.T, w @ mem)
    return fns


def repeats(repeat: int, work: int) -> int:
    """More repeats for the small cases (a fraction of a millisecond each, the noisiest), fewer for the largest."""
    return (
        repeat * 5
        if work < 10**7
        else repeat * 2
        if work < 10**8
        else repeat
        if work < 10**9
        else max(3, repeat // 2)
    )


def fixed_cost(repeat: int) -> str:
    """What a call costs whatever its size: retrieve on 16 patterns against its two products there."""
    mem, x = memory(16, 64), torch.randn(1, 64) / 8
    t = interleaved(
        {"retrieve": lambda: am.retrieve(mem, x, 1.0), "products": lambda: (x @ mem.T).softmax(-1) @ mem},
        repeat,
    )
    r, p = t["retrieve"] * 1e6, t["products"] * 1e6
    rc, pc = t["retrieve cpu"] * 1e6, t["products cpu"] * 1e6
    return (
        f"a call's fixed cost: retrieve on K=16 takes {r:.0f} us (softmax(x P^T) P there: {p:.0f} us; "
        f"in CPU time {rc:.0f} and {pc:.0f} us)"
    )


def grid(threads: int, dims: list[int], sizes: list[int], betas: list[float], repeat: int) -> float:
    torch.set_num_threads(threads)
    cpu = (
        threads == 1
    )  # one thread: its CPU time too (the same runs), robust to other processes taking the cores
    print(f"\n{threads} thread(s), float32, {load()}; {barrier_probe()}; {fixed_cost(repeat * 20)}")
    print(f"{'B':>3} {'d':>4} {'K':>9} {'beta':>5} {'floor ms':>9} {'retrieve/floor':>15} {'/whole':>7} {'/read':>6} "
          f"{'plain/floor':>12}" + (f" {'cpu: retrieve/floor':>20} {'/read':>6}" if cpu else ""))  # fmt: skip
    worst = worst_cpu = 0.0
    for d in dims:
        for k in sizes:
            mem = memory(k, d)
            for b in (1, 64):
                x = mem[:b] + 0.3 * torch.randn(b, d, generator=torch.Generator().manual_seed(2)) / d**0.5
                for beta in betas:
                    fns = floors(mem, x * beta)
                    fns["retrieve"] = lambda mem=mem, x=x, beta=beta: am.retrieve(mem, x, beta)
                    if b * k * 4 <= 1 << 30:
                        fns["plain"] = lambda mem=mem, x=x, beta=beta: (
                            torch.softmax(beta * x @ mem.T, -1) @ mem
                        )
                    t = interleaved(fns, repeats(repeat, b * k * d))
                    floor = min(t["chunked"], t.get("whole", float("inf")))
                    r = t["retrieve"] / floor
                    worst = max(worst, r)
                    whole = f"{t['retrieve'] / t['whole']:7.3f}" if "whole" in t else f"{'-':>7}"
                    read = f"{t['retrieve'] / t['read']:6.2f}" if b == 1 else f"{'':>6}"
                    plain = f"{t['plain'] / floor:12.3f}" if "plain" in t else f"{'-':>12}"
                    line = (
                        f"{b:>3} {d:>4} {k:>9} {beta:>5g} {floor * 1e3:9.2f} {r:15.3f} {whole} {read} {plain}"
                    )
                    if cpu:
                        rc = t["retrieve cpu"] / min(t["chunked cpu"], t.get("whole cpu", float("inf")))
                        worst_cpu = max(worst_cpu, rc)
                        line += f" {rc:20.3f}" + (
                            f" {t['retrieve cpu'] / t['read cpu']:6.2f}" if b == 1 else ""
                        )
                    print(line, flush=True)
            del mem
    in_cpu = f", in CPU time {worst_cpu:.3f}" if cpu else ""
    print(f"worst retrieve/floor on {threads} thread(s): {worst:.3f}{in_cpu} (target <= 1.25); {load()}")
    return worst


def headline(repeat: int) -> None:
    """B = 64, d = 256, K = 65,536: one step against the floor, plain attention and PyTorch's fused attention
    kernel; three steps against one."""
    b, d, k, beta = 64, 256, 65536, 1.0
    mem = memory(k, d)
    q = mem[:b] + 0.3 * torch.randn(b, d) / d**0.5
    fns = floors(mem, q * beta)
    fns["retrieve"] = lambda: am.retrieve(mem, q, beta)
    fns["plain"] = lambda: torch.softmax(beta * q @ mem.T, -1) @ mem
    fns["sdpa"] = lambda: F.scaled_dot_product_attention(q[None], mem[None], mem[None], scale=beta)
    fns["three"] = lambda: am.retrieve(mem, q, beta, steps=3)
    t = interleaved(fns, repeat)
    floor = min(t["chunked"], t["whole"])
    print(f"B={b} d={d} K={k}: floor {floor * 1e3:.1f} ms; retrieve {t['retrieve'] / floor:.3f}x, plain "
          f"{t['plain'] / floor:.3f}x, scaled_dot_product_attention {t['sdpa'] / floor:.3f}x the floor; three steps "
          f"/ one step {t['three'] / t['retrieve']:.3f}")  # fmt: skip


def per_item(repeat: int, per_item_k: int) -> None:
    """Per-item memories against their two ``bmm``."""
    b, d, beta = 64, 256, 1.0
    per = memory(b * per_item_k, d).view(b, per_item_k, d)
    q = torch.randn(b, 4, d) / d**0.5
    w = torch.softmax(torch.randn(b, 4, per_item_k), -1)
    t = interleaved(
        {
            "scores": lambda: torch.bmm(q * beta, per.transpose(1, 2)),
            "read-out": lambda: torch.bmm(w, per),
            "retrieve": lambda: am.retrieve(per, q, beta),
            "plain": lambda: torch.softmax(torch.bmm(q * beta, per.transpose(1, 2)), -1).bmm(per),
        },
        repeat,
    )
    floor = t["scores"] + t["read-out"]
    print(f"per-item memories ({b}, {per_item_k}, {d}), 4 queries each: two bmm {floor * 1e3:.1f} ms, retrieve "
          f"{t['retrieve'] / floor:.3f}x, plain batched {t['plain'] / floor:.3f}x (target <= 1.3)")  # fmt: skip


def huge(b: int, repeat: int) -> None:
    """K = 10^7, d = 64: the peak memory of one retrieval (first, before anything else raises it), then the time
    against the floor."""
    k, d = 10_000_000, 64
    with torch.inference_mode():
        mem = memory(k, d)
        x = mem[123_456 : 123_456 + b] + 0.01 * torch.randn(b, d) / d**0.5
        before = peak_resident_bytes()
        out = am.retrieve(mem, x, 200.0)
        extra = peak_resident_bytes() - before
        err = float((out[0] - mem[123_456]).abs().max())
        fns = floors(mem, x * 200.0)
        fns["retrieve"] = lambda: am.retrieve(mem, x, 200.0)
        t = interleaved(fns, repeat)
    size = mem.numel() * mem.element_size()
    read = f", {t['retrieve'] / t['read']:.2f}x one read of the memory" if b == 1 else ""
    print(f"K={k} d={d} B={b} ({torch.get_num_threads()} thread(s)): memory matrix {size / 2**30:.2f} GiB; retrieve "
          f"{t['retrieve'] * 1e3:.0f} ms = {t['retrieve'] / t['chunked']:.3f}x the floor{read}; peak memory "
          f"+{extra / 2**20:.0f} MiB ({extra / size:.1%} of the memory matrix); max |retrieved - stored| = {err:.1e}; "
          f"{load()}")  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--dims", type=int, nargs="+", default=[64, 256])
    p.add_argument("--memories", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    p.add_argument("--betas", type=float, nargs="+", default=[1.0, 200.0])
    p.add_argument("--repeat", type=int, default=7)
    p.add_argument("--per-item-k", type=int, default=16384)
    p.add_argument(
        "--huge", action="store_true", help="also K = 10^7, d = 64, B = 1 and 64, in their own processes"
    )
    p.add_argument("--huge-only", type=int, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.huge_only is not None:
        torch.set_num_threads(a.threads[0])
        huge(a.huge_only, max(3, a.repeat // 2))
        return
    print(f"torch {torch.__version__}")
    with torch.inference_mode():
        for threads in a.threads:
            grid(threads, a.dims, a.memories, a.betas, a.repeat)
            headline(a.repeat)
            per_item(a.repeat, a.per_item_k)
    if a.huge:
        for threads in a.threads:
            for b in (1, 64):  # one at a time: 2.56 GB each
                cmd = [sys.executable, __file__, "--huge-only", str(b), "--threads", str(threads)]
                subprocess.run([*cmd, "--repeat", str(a.repeat)], check=True)


if __name__ == "__main__":
    main()
