"""Throughput of the repertoire data path, in sequences per second, measured in one run (issue 15, docs/repertoire.md).

    python benchmarks/repertoire_data.py                          # 40 bags of 10^4 sequences, 3 repeats
    python benchmarks/repertoire_data.py --bags 100 --repeat 5

``simulate``: writing a simulated data set (background, implanted motif, chance-match scan, the TSV text, the
truth); ``read tsv``: parsing every bag from its AIRR TSV (the cache switched off); ``read cache``: the same bags
from the encoded cache (safetensors); ``kmer counts``: the 4-mer counts of every bag, read from the cache. Times are
medians of interleaved repeats on one thread; the ratio is each path's rate over the TSV reader's, in the same run.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import torch
from timing import interleaved, load

from assocmem.repertoire import RepertoireDataset, kmer_counts, simulate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bags", type=int, default=40)
    parser.add_argument("--bag-size", type=int, default=10000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    root = Path(tempfile.mkdtemp(prefix="repertoire-bench-"))
    try:
        counter = iter(range(10**9))

        def sim() -> None:
            folder = root / f"sim{next(counter)}"
            simulate(folder, bags=args.bags, bag_size=args.bag_size, witness_rate=0.001, seed=0)
            shutil.rmtree(folder)

        data = root / "data"
        simulate(data, bags=args.bags, bag_size=args.bag_size, witness_rate=0.001, seed=0)
        plain = RepertoireDataset.open(data, cache=False)
        cached = RepertoireDataset.open(data)
        for i in range(len(cached)):
            cached[i]  # fill the cache

        def read(ds: RepertoireDataset) -> None:
            for i in range(len(ds)):
                ds[i]

        def kmers() -> None:
            for i in range(len(cached)):
                bag = cached[i]
                kmer_counts(bag.codes, bag.lengths, k=4)

        times = interleaved(
            {
                "simulate": sim,
                "read tsv": lambda: read(plain),
                "read cache": lambda: read(cached),
                "kmer counts": kmers,
            },
            args.repeat,
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)
    n = args.bags * args.bag_size
    print(f"{args.bags} bags x {args.bag_size} sequences, {args.repeat} repeats, 1 thread; {load()}")
    base = n / times["read tsv"]
    print(f"{'path':<12} {'seconds':>8} {'sequences/s':>12} {'/ read tsv':>10}")
    for name in ("simulate", "read tsv", "read cache", "kmer counts"):
        rate = n / times[name]
        print(f"{name:<12} {times[name]:>8.3f} {rate:>12.3g} {rate / base:>10.2f}")


if __name__ == "__main__":
    main()
