"""Peak memory and throughput of the repertoire model on one bag of 10^3, 10^4 and 10^5 sequences.

    PYTHONPATH=src python benchmarks/repertoire_memory.py [--sizes 1000 10000 100000] [--threads 1]

Each measurement runs in a fresh process (so that one size's peak cannot hide another's): it makes a random bag
(CDR3-like lengths 8 to 20), builds the attention model of ``recipes/repertoire/attention.json``, notes its
resident memory, runs one training step (forward, backward) or one prediction, and reports the peak resident set
(``getrusage`` maximum) above that starting point, next to the size of the embeddings ``n x dim`` themselves. Then
it times three more steps (median) for the sequences per second. ``whole`` is the same training step without the
chunked recomputation (the convolution's activations of the whole bag kept for the backward pass), for the ratio;
it is run up to 10^4 sequences. glibc's allocator runs with fixed thresholds in the child (below), so that freed
blocks go back to the system and the resident set follows the memory in use.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

CHILD = """
import json, resource, statistics, sys, time
import torch
from assocmem.repertoire.alphabet import encode
from assocmem.repertoire.config import RepertoireConfig
from assocmem.repertoire.embedding import one_hot
from assocmem.repertoire.model import RepertoireClassifier

n, mode, threads, recipe = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
torch.set_num_threads(threads)
g = torch.Generator().manual_seed(0)
lengths = torch.randint(8, 21, (n,), generator=g)
letters = torch.randint(0, 20, (n, 20), generator=g)
alphabet = "ACDEFGHIKLMNPQRSTVWY"
codes, lengths = encode(["".join(alphabet[j] for j in row[:m]) for row, m in zip(letters.tolist(), lengths.tolist())])
counts = torch.ones(n, dtype=torch.int64)
model = RepertoireClassifier(RepertoireConfig.load(recipe))

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()

def step():
    if mode == "infer":
        with torch.no_grad():
            return model.classify(codes, lengths, counts).logit
    if mode == "whole":  # no recomputation: the whole bag's activations kept for backward
        h = model.embedding(one_hot(codes, model.dtype), lengths)
        out = model.head(h, counts)
    else:
        out = model.classify(codes, lengths, counts)
    out.logit.backward()
    model.zero_grad(set_to_none=True)

start = rss()
step()
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - start
times = []
for _ in range(3):
    t = time.perf_counter(); step(); times.append(time.perf_counter() - t)
print(json.dumps({"n": n, "mode": mode, "peak_mb": peak / 2**20, "embeddings_mb": n * model.config.dim * 4 / 2**20,
                  "seconds": statistics.median(times), "sequences_per_second": n / statistics.median(times)}))
"""


def measure(n: int, mode: str, threads: int, recipe: Path) -> dict:
    env_path = str(REPO / "src")
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(n), mode, str(threads), str(recipe)],
        capture_output=True,
        text=True,
        check=True,
        env={
            "PYTHONPATH": env_path,
            "OMP_NUM_THREADS": str(threads),
            "PATH": "/usr/bin:/bin",
            # glibc raises its mmap threshold after large frees and then keeps freed blocks: fixed thresholds make
            # the resident set follow the memory in use, so the peak measures the step, not the allocator's cache
            "MALLOC_MMAP_THRESHOLD_": "131072",
            "MALLOC_TRIM_THRESHOLD_": "131072",
        },
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000, 100_000])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--recipe", type=Path, default=REPO / "recipes" / "repertoire" / "attention.json")
    args = p.parse_args()
    print(f"{'n':>8} {'mode':>6} {'peak MB':>9} {'emb MB':>7} {'seq/s':>9}")
    rows = []
    for n in args.sizes:
        for mode in ("train", "infer", "whole"):
            if mode == "whole" and n > 10_000:
                continue
            r = measure(n, mode, args.threads, args.recipe)
            rows.append(r)
            print(
                f"{n:>8} {mode:>6} {r['peak_mb']:>9.1f} {r['embeddings_mb']:>7.1f} {r['sequences_per_second']:>9.0f}"
            )
    train = {r["n"]: r["peak_mb"] for r in rows if r["mode"] == "train"}
    if len(train) > 1:
        lo, hi = min(train), max(train)
        print(f"training peak grows {train[hi] / max(train[lo], 1e-9):.2f}x for a {hi // lo}x larger bag")
    trains = [r["sequences_per_second"] for r in rows if r["mode"] == "train"]
    infers = [r["sequences_per_second"] for r in rows if r["mode"] == "infer"]
    print(
        f"median throughput: training {statistics.median(trains):.0f} seq/s, "
        f"inference {statistics.median(infers):.0f} seq/s"
    )


if __name__ == "__main__":
    main()
