"""Candidate retrieval with a certificate against exact streaming, in the same run (issue 14, docs/bank.md).

    python benchmarks/bank.py                      # K = 10^7, d = 64, B = 8, float16 rows, IVF, beta = 8
    python benchmarks/bank.py --size 50000000 --storage int8 --exact bank   # the scale run (no float32 copy)
    python benchmarks/bank.py --size 100000 --repeat 3                      # a quick look

The bank: ``--centers`` centres (standard normal) and each row a centre plus ``--spread`` times a standard normal,
scaled to the norm ``sqrt(d)`` (as normalized embeddings are); the queries: stored rows plus 0.05 noise; beta
large enough that one memory takes nearly all the weight (printed). ``exact``: ``assocmem.retrieve`` over the
float32 rows (``--exact retrieve``: a float32 copy is made for it) or the bank's own exact pass over its stored
rows (``--exact bank``).
``candidates``: ``MemoryBank.retrieve`` on the IVF candidate backend, which must certify every query's weight
outside the candidates below ``--tol`` (no fallback). Both take one association; times are medians of
interleaved repeats on ``--threads`` threads; the ratio is the exact median over the candidate median. Memory:
the bank's bytes per row (rows, scales, ids, partition) and the process's peak resident memory.
"""

from __future__ import annotations

import argparse
import os
import time

import torch
from timing import interleaved, load, peak_resident_bytes

from assocmem.engines.bank import MemoryBank
from assocmem.engines.bank.candidates import CandidateBackend
from assocmem.engines.bank.local import LocalBackend
from assocmem.engines.bank.rows import STORAGE, Rows


def make_rows(args: argparse.Namespace, copy32: bool) -> tuple[Rows, torch.Tensor | None]:
    """The bank's rows in their storage type, made in pieces (no float32 copy of the whole bank unless asked)."""
    k, d = args.size, args.dim
    g = torch.Generator().manual_seed(args.seed)
    centers = torch.randn(args.centers, d, generator=g)
    data = torch.empty(k, d, dtype=STORAGE[args.storage])
    scale = torch.empty(k) if args.storage == "int8" else None
    full = torch.empty(k, d) if copy32 else None
    step = 1 << 20
    for lo in range(0, k, step):
        hi = min(lo + step, k)
        x = centers[torch.randint(0, args.centers, (hi - lo,), generator=g)]
        x += args.spread * torch.randn(hi - lo, d, generator=g)
        x *= d**0.5 / torch.linalg.vector_norm(
            x, dim=1, keepdim=True
        )  # norm sqrt(d), as normalized embeddings
        r = Rows.store(x, args.storage)
        data[lo:hi] = r.data
        if scale is not None:
            scale[lo:hi] = r.scale
        if full is not None:
            full[lo:hi] = r.block(0, hi - lo, torch.float32)  # the stored rows, exactly
    return Rows(data, scale), full


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=10_000_000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--queries", type=int, default=8)
    parser.add_argument("--centers", type=int, default=1024)
    parser.add_argument("--spread", type=float, default=0.25)
    parser.add_argument("--clusters", type=int, default=2048)
    parser.add_argument("--nprobe", type=int, default=1)
    parser.add_argument("--beta", type=float, default=8.0)
    parser.add_argument("--tol", type=float, default=1e-6)
    parser.add_argument("--storage", choices=["float32", "float16", "int8"], default="float16")
    parser.add_argument("--exact", choices=["retrieve", "bank"], default="retrieve")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    print(f"K = {args.size:.2e}, d = {args.dim}, B = {args.queries}, storage {args.storage}, beta {args.beta}, "
          f"{args.threads} thread(s); {load()}")  # fmt: skip
    t = time.perf_counter()
    rows, full = make_rows(args, copy32=args.exact == "retrieve")
    print(f"rows made in {time.perf_counter() - t:.1f} s")
    t = time.perf_counter()
    cand = CandidateBackend(
        LocalBackend(rows), "ivf", clusters=args.clusters, nprobe=args.nprobe, outside_tol=args.tol
    )
    build = time.perf_counter() - t
    local = cand.local  # the rows in cluster order (the ones given are let go: one copy of the bank)
    rows = local.patterns
    ids = torch.arange(args.size)
    bank = MemoryBank.on(cand, ids)
    exact_bank = MemoryBank.on(local, ids)
    p = cand.partition
    index_bytes = sum(x.nbytes for x in (p.labels, p.order, p.centroids, p.radii, p.counts, p.offsets))
    per_row = (rows.nbytes + ids.nbytes + index_bytes) / args.size
    print(f"IVF partition ({args.clusters} clusters) built in {build:.1f} s; bytes per row: rows "
          f"{rows.nbytes / args.size:.1f}, ids 8, partition {index_bytes / args.size:.1f}, "
          f"all {per_row:.1f}")  # fmt: skip
    g = torch.Generator().manual_seed(args.seed + 1)
    pick = torch.randint(0, args.size, (args.queries,), generator=g)
    q = rows.take(pick, torch.float32) + 0.05 * torch.randn(args.queries, args.dim, generator=g)
    if args.exact == "retrieve":
        import assocmem as am

        def exact() -> torch.Tensor:
            return am.retrieve(full, q, args.beta)
    else:

        def exact() -> torch.Tensor:
            return exact_bank.retrieve(q, args.beta)

    with torch.inference_mode():
        got = bank.retrieve(q, args.beta)
        ref = exact()
        search = cand.search(q, args.beta)
        _, lse = local.exact(q, args.beta, None)
        times = interleaved({"exact": exact, "candidates": lambda: bank.retrieve(q, args.beta)}, args.repeat)
    dominant = torch.exp(args.beta * (rows.take(pick, torch.float32) * q).sum(1) - lse)
    cert = search.certificate
    print(f"certified outside weight: max {float(cert.bound.max()):.2e} (tolerance {args.tol:g}); fallbacks "
          f"{int(cert.fallback.sum())}/{args.queries}; rows scored per query: median {int(cert.scored.median())} "
          f"({float(cert.scored.median()) / args.size:.2e} of the bank)")  # fmt: skip
    print(f"weight of the query's own memory: min {float(dominant.min()):.6f}; max |candidates - exact| "
          f"{float((got.states - ref).abs().max()):.2e}")  # fmt: skip
    print(f"exact ({args.exact}) {times['exact'] * 1e3:.1f} ms, candidates {times['candidates'] * 1e3:.2f} ms: "
          f"{times['exact'] / times['candidates']:.1f}x faster (target >= 20x)")  # fmt: skip
    print(f"peak resident memory {peak_resident_bytes() / 2**30:.2f} GiB")


if __name__ == "__main__":
    main()
