"""The chunked association's two in-place paths side by side, one thread: compiled (numba: one call per chunk for
its maximum, weights and sum, one per merge) and PyTorch's operations (``online_softmax.use_fused`` off), each
against the matrix-multiply floor of ``benchmarks/retrieval.py`` (its two products chunk by chunk or whole, the
faster), interleaved in the same process.

    python benchmarks/chunk_kernels.py                        # B = 64, d = 64, K = 10^4 and 10^5, beta 1 and 200
    python benchmarks/chunk_kernels.py --dims 64 256 --repeat 100

Ratios of CPU time (this thread's clock: other processes taking the cores do not inflate it, their sharing the
caches does), medians of interleaved repeats; the load average is printed. Only the chunked path of ``B > 1``
queries changes between the two: one query against one memory is one compiled pass either way.
"""

from __future__ import annotations

import argparse

import torch
from retrieval import floors, memory, repeats
from timing import interleaved, load

import assocmem as am
from assocmem.engines import online_softmax


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dims", type=int, nargs="+", default=[64])
    p.add_argument("--memories", type=int, nargs="+", default=[10_000, 100_000])
    p.add_argument("--betas", type=float, nargs="+", default=[1.0, 200.0])
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--repeat", type=int, default=12)
    a = p.parse_args()
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, float32, 1 thread, {load()}; CPU time / the floor's")
    print(f"{'B':>3} {'d':>4} {'K':>9} {'beta':>5} {'floor ms':>9} {'compiled':>9} {'pytorch':>8}")
    with torch.inference_mode():
        for d in a.dims:
            for k in a.memories:
                mem = memory(k, d)
                x = (
                    mem[: a.batch]
                    + 0.3 * torch.randn(a.batch, d, generator=torch.Generator().manual_seed(2)) / d**0.5
                )
                for beta in a.betas:

                    def run(
                        compiled: bool, mem: torch.Tensor = mem, x: torch.Tensor = x, beta: float = beta
                    ) -> None:
                        online_softmax.use_fused = compiled
                        am.retrieve(mem, x, beta)

                    fns = {
                        name: f for name, f in floors(mem, x * beta).items() if name in ("chunked", "whole")
                    }
                    fns["compiled"], fns["pytorch"] = lambda: run(True), lambda: run(False)
                    try:
                        t = interleaved(fns, repeats(a.repeat, a.batch * k * d))
                    finally:
                        online_softmax.use_fused = True
                    floor = min(t["chunked cpu"], t.get("whole cpu", float("inf")))
                    print(f"{a.batch:>3} {d:>4} {k:>9} {beta:>5g} {floor * 1e3:9.2f} {t['compiled cpu'] / floor:9.3f} "
                          f"{t['pytorch cpu'] / floor:8.3f}", flush=True)  # fmt: skip
                del mem
    print(load())


if __name__ == "__main__":
    main()
