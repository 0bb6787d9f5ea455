"""The sharded bank against one process, in the same run, and the cost model of docs/bank.md ("Sharded banks")
checked against it.

    python benchmarks/bank_sharded.py                        # K in (1e5, 1e6, 4e6), B in (1, 8, 64), d = 64
    python benchmarks/bank_sharded.py --memories 100000 --batches 1 8 --repeat 3

Two ranks on this machine (gloo over the loopback interface, one thread each) hold half the rows each. Per
(K, B), interleaved and repeated (medians), with barriers between the phases so that each runs alone:

- ``local 1t`` / ``local 2t``: rank 0 alone, the association over all K rows (the single-process engine,
  ``associate(..., need_lse=True)``) on one and on two threads (the two-thread figure uses the same two cores
  as the two ranks: the fair comparison);
- ``sharded``: both ranks, ``ShardedBackend.associate`` (each rank's K/2 rows, the all_gather and the all_reduce);
- ``part``: both ranks, the association over their own K/2 rows alone (no collective): ``sharded - part`` is
  what the merge costs.

Then the collectives alone (the all_gather of ``B + 4`` float64 and the all_reduce of ``B x 64`` float32) on 2,
3 and 4 ranks, which fix the model's latency and bandwidth terms on this machine, and the peak memory per rank.
The model (docs/bank-sharded.md): ``T(P) = K/P x d x (a + b B) + T_coll(B, P)``; ``a`` and ``b`` are fitted on
the CPU time of ``local 1t`` and predict the CPU time of ``part`` (K/2 rows), ``T_coll = (P - 1) (3 alpha + bytes
/ bandwidth)`` is fitted on the collectives on two ranks. Wall times on a loaded machine stretch with the load
(printed): the CPU times are the robust figures.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.distributed as dist
from timing import load, peak_resident_bytes

from assocmem.engines.association import associate
from assocmem.engines.bank import ShardedBackend, launch, shard_bounds

D, BETA, BLOCK = 64, 8.0, 1 << 16


def rows(lo: int, hi: int, d: int = D) -> torch.Tensor:
    """Rows ``lo`` to ``hi`` of the benchmark's bank (norm about 1): every rank makes the same rows for a range,
    block by block (block ``j`` seeded ``j``), without holding the rest."""
    out = torch.empty(hi - lo, d)
    for j in range(lo // BLOCK, (hi - 1) // BLOCK + 1):
        block = torch.randn(BLOCK, d, generator=torch.Generator().manual_seed(j)) / d**0.5
        a, b = max(lo, j * BLOCK), min(hi, (j + 1) * BLOCK)
        out[a - lo : b - lo] = block[a - j * BLOCK : b - j * BLOCK]
    return out


def timed(fn: object, group: object) -> tuple[float, float]:
    """Wall seconds and CPU seconds of this process (every thread: gloo's too) of ``fn``, after a barrier."""
    dist.barrier(group)
    c, t = time.process_time(), time.perf_counter()
    fn()
    return time.perf_counter() - t, time.process_time() - c


def compare(rank: int, world: int, memories: list[int], batches: list[int], repeat: int) -> dict:
    """One rank of the comparison: per (K, B) the medians of each phase (wall, and CPU as ``name cpu``), and this
    rank's memory."""
    group = dist.new_group()
    base = peak_resident_bytes()
    found = []
    for k in memories:
        lo, hi = shard_bounds(k, world, rank)
        backend = ShardedBackend.from_rows(torch.arange(lo, hi), rows(lo, hi), group=group)
        whole = rows(0, k) if rank == 0 else None
        for b in batches:
            q = rows(0, b) + 0.05 * torch.randn(b, D, generator=torch.Generator().manual_seed(1))

            def local(threads: int, q: torch.Tensor = q, whole: torch.Tensor | None = whole) -> None:
                if whole is not None:
                    torch.set_num_threads(threads)
                    associate(q, whole, whole, BETA, need_lse=True)
                    torch.set_num_threads(1)

            phases = {
                "local 1t": lambda: local(1),
                "local 2t": lambda: local(2),
                "sharded": lambda q=q, bank=backend: bank.associate(q, BETA),
                "part": lambda q=q, bank=backend: associate(
                    q, bank.patterns, bank.patterns, BETA, need_lse=True
                ),
            }
            times: dict[str, list[float]] = {n: [] for name in phases for n in (name, name + " cpu")}
            for rep in range(repeat + 1):  # the first round warms up
                for name, fn in phases.items():
                    wall, cpu = timed(fn, group)
                    if rep:
                        times[name].append(wall)
                        times[name + " cpu"].append(cpu)
            found.append({"K": k, "B": b, **{n: statistics.median(ts) for n, ts in times.items()}})
        del whole, backend
    return {"rows": found, "rows bytes": (hi - lo) * D * 4, "peak": peak_resident_bytes() - base}


def collectives(rank: int, world: int, batches: list[int], repeat: int) -> dict[int, float]:
    """The two collectives of one association alone, median seconds per batch size."""
    group = dist.new_group()
    out = {}
    for b in batches:
        lse, part = torch.zeros(b + 4, dtype=torch.float64), torch.zeros(b, D)
        gathered = [torch.empty_like(lse) for _ in range(world)]

        def both(lse: torch.Tensor = lse, part: torch.Tensor = part, gathered: list = gathered) -> None:
            dist.all_gather(gathered, lse, group=group)
            dist.all_reduce(part, group=group)

        ts = [timed(both, group)[0] for _ in range(repeat + 1)][1:]
        out[b] = statistics.median(ts)
    return out


def fit(xs: list[list[float]], ys: list[float]) -> list[float]:
    """Least squares ``y ~ xs . c`` relative to y (each point weighs alike whatever its size)."""
    a = torch.tensor(xs, dtype=torch.float64) / torch.tensor(ys, dtype=torch.float64)[:, None]
    return torch.linalg.lstsq(a, torch.ones(len(ys), 1, dtype=torch.float64)).solution[:, 0].tolist()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--memories", type=int, nargs="+", default=[100_000, 1_000_000, 4_000_000])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8, 64])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    print(f"d = {D}, beta = {BETA}, float32, {load()}")
    ranks = launch(compare, 2, (args.memories, args.batches, args.repeat), timeout=3600.0)
    comm_batches = sorted({1, 8, 64, 512, *args.batches})
    comm = {p: launch(collectives, p, (comm_batches, 4 * args.repeat), timeout=600.0)[0] for p in (2, 3, 4)}
    # the model's constants: compute per row and per row x query (local 1t, CPU time: robust to other processes
    # taking the cores), the collectives' latency and bandwidth on two ranks (wall time: latency is waiting; three
    # and four ranks share two cores here, so their waits are the scheduler's)
    table = ranks[0]["rows"]
    a, b = fit([[r["K"] * D, r["K"] * D * r["B"]] for r in table], [r["local 1t cpu"] for r in table])

    def volume(n: int, p: int) -> float:
        return (p - 1) * 8 * (n + 4) + 2 * (p - 1) / p * 4 * n * D

    alpha, per_byte = fit([[3, volume(n, 2)] for n in comm_batches], [comm[2][n] for n in comm_batches])
    if per_byte <= 0:  # the bytes do not show at these sizes: latency alone
        alpha, per_byte = statistics.median(comm[2][n] / 3 for n in comm_batches), 0.0

    def coll(n: int, p: int) -> float:
        return 3 * (p - 1) * alpha + per_byte * volume(n, p)

    print("\nms, medians of interleaved repeats; two ranks on loopback, one thread each")
    print(f"{'':>14} | {'wall time':^44} | {'CPU time of one rank (all its threads)':^52} | {'model':^15}")
    print(f"{'K':>9} {'B':>4} | {'local 1t':>8} {'local 2t':>8} {'sharded':>8} {'part':>8} {'sh/loc2t':>8} | "
          f"{'local 1t':>8} {'sharded':>8} {'part':>8} {'merge':>8} {'sh/loc1t':>8} | "
          f"{'part':>8} {'/part':>6}")  # fmt: skip
    for r in table:
        model = (r["K"] / 2) * D * (a + b * r["B"])
        ms = {n: 1e3 * v for n, v in r.items() if n not in ("K", "B")}
        print(f"{r['K']:>9} {r['B']:>4} | {ms['local 1t']:8.2f} {ms['local 2t']:8.2f} {ms['sharded']:8.2f} "
              f"{ms['part']:8.2f} {r['sharded'] / r['local 2t']:8.2f} | {ms['local 1t cpu']:8.2f} "
              f"{ms['sharded cpu']:8.2f} {ms['part cpu']:8.2f} {ms['sharded cpu'] - ms['part cpu']:8.2f} "
              f"{r['sharded cpu'] / r['local 1t cpu']:8.2f} | "
              f"{1e3 * model:8.2f} {model / r['part cpu']:6.2f}")  # fmt: skip
    print(
        "\nthe collectives alone (all_gather of B + 4 float64, all_reduce of B x 64 float32), ms: measured / model"
    )
    print(f"{'B':>5} " + " ".join(f"{f'P = {p}':>15}" for p in comm))
    for n in comm_batches:
        print(f"{n:>5} " + " ".join(f"{1e3 * comm[p][n]:7.3f} / {1e3 * coll(n, p):5.3f}" for p in comm))
    rate = f"{1e-9 / per_byte:.2f} GB/s" if per_byte > 0 else "bytes not resolved"
    print(f"\nfitted: a = {a * 1e9:.3f} ns per row x feature, b = {b * 1e9:.4f} ns per row x feature x query, "
          f"alpha = {alpha * 1e6:.1f} us per step (two ranks), {rate}; {load()}")  # fmt: skip
    for rank, r in enumerate(ranks):
        whole = " (and the whole bank, for 'local')" if rank == 0 else ""
        print(f"rank {rank}: rows {r['rows bytes'] / 2**20:.0f} MiB (largest K){whole}, peak resident memory "
              f"above the start {r['peak'] / 2**20:.0f} MiB")  # fmt: skip


if __name__ == "__main__":
    main()
