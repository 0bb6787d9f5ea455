"""The Hopfield layers against assocmem.retrieve plus the layer's own products, in the same run.

    python benchmarks/hopfield_layers.py          # 1 and 2 threads: static layers on a shared memory (against
                                                  # retrieve), HopfieldLayer (against retrieve + its projections),
                                                  # per-item memories (against two bmm), several heads, update steps
    python benchmarks/hopfield_layers.py --huge   # also the peak memory of a static layer on K = 10^7, d = 64

What each ratio divides by, all timed in the same run (interleaved medians of --repeat):

- static: ``Hopfield`` with every projection static on a memory given once for the batch (``mem.expand(B, K, d)``)
  against ``retrieve(mem, queries, beta)`` (target 1.1);
- HopfieldLayer: ``HopfieldLayer(d, quantity=K)`` (its lookup weights are the memory) against the same computation
  written by hand: its layer norms and projections, then ``retrieve`` on the projected memory, then the output
  projection (target 1.1; without the layer norms it is ``retrieve`` plus the projection products alone);
- per-item: a static ``Hopfield`` on per-item stored patterns ``(B, S, d)`` against the two ``bmm`` of one update
  (target 1.3);
- heads: ``Hopfield(d, num_heads=4)`` on per-item patterns against its projections and ``retrieve`` per head by hand;
- steps: a static ``Hopfield`` with ``update_steps_max=2`` and ``update_steps_stop_on="state"`` against
  ``retrieve(..., steps=3, tol=...)`` (hflayers' default stop rule, on the association matrix, needs that whole
  matrix at every step, which a memory read in chunks does not otherwise make).
"""

from __future__ import annotations

import argparse
import subprocess
import sys

import torch
from retrieval import memory
from timing import barrier_probe, interleaved, load, peak_resident_bytes
from torch.nn import functional as F

import assocmem as am
from assocmem.nn import Hopfield, HopfieldLayer

STATIC = dict(
    normalize_stored_pattern=False, normalize_stored_pattern_affine=False, normalize_state_pattern=False,
    normalize_state_pattern_affine=False, normalize_pattern_projection=False,
    normalize_pattern_projection_affine=False, stored_pattern_as_static=True, state_pattern_as_static=True,
    pattern_projection_as_static=True, disable_out_projection=True,
)  # fmt: skip
NO_NORMS = {k: False for k in STATIC if k.startswith("normalize")}


def row(name: str, t: dict[str, float], base: str, target: float) -> float:
    r = t["layer"] / t[base]
    print(f"  {name:<90} {t[base] * 1e3:9.2f} ms {r:7.3f}  (target <= {target})", flush=True)
    return r / target


def static(b: int, k: int, d: int, beta: float, repeat: int) -> float:
    mem = memory(k, d)
    q = (mem[:b] + 0.3 * torch.randn(b, d) / d**0.5).unsqueeze(1)
    layer = Hopfield(scaling=beta, **STATIC)
    inputs = (mem.expand(b, k, d), q, mem.expand(b, k, d))
    t = interleaved(
        {"layer": lambda: layer(inputs), "retrieve": lambda: am.retrieve(mem, q[:, 0], beta)}, repeat
    )
    return row(f"static, shared memory B={b} K={k} d={d} / retrieve", t, "retrieve", 1.1)


def lookup(b: int, k: int, d: int, norms: bool, repeat: int) -> float:
    layer = HopfieldLayer(d, quantity=k, **({} if norms else NO_NORMS))
    h, core = layer.hopfield, layer.hopfield.association_core
    (wq, wk, wv), (bq, bk, bv) = core.in_proj_weight.split(d), core.in_proj_bias.split(d)
    y, x = layer.lookup_weights[0], torch.randn(b, 1, d)
    norm = (lambda m, t: t) if not norms else (lambda m, t: m(t))

    def by_hand():
        keys = F.linear(norm(h.norm_stored_pattern, y), wk, bk)
        values = F.linear(norm(h.norm_pattern_projection, y), wv, bv)
        queries = F.linear(norm(h.norm_state_pattern, x[:, 0]), wq, bq)
        return core.out_proj(am.retrieve(keys, queries, h.scaling, values=values))

    t = interleaved({"layer": lambda: layer(x), "by hand": by_hand}, repeat)
    what = "with its layer norms" if norms else "no layer norms"
    return row(f"HopfieldLayer B={b} K={k} d={d} ({what}) / by hand", t, "by hand", 1.1)


def per_item(b: int, s: int, d: int, beta: float, repeat: int) -> float:
    per = memory(b * s, d).view(b, s, d)
    q = torch.randn(b, 4, d) / d**0.5
    w = torch.softmax(torch.randn(b, 4, s), -1)
    layer = Hopfield(scaling=beta, **STATIC)
    t = interleaved(
        {
            "scores": lambda: torch.bmm(q * beta, per.transpose(1, 2)),
            "read-out": lambda: torch.bmm(w, per),
            "layer": lambda: layer((per, q, per)),
        },
        repeat,
    )
    t["floor"] = t["scores"] + t["read-out"]
    return row(f"static, per-item memories ({b}, {s}, {d}), 4 queries / two bmm", t, "floor", 1.3)


def heads(b: int, s: int, d: int, repeat: int) -> float:
    h = 4
    layer = Hopfield(d, num_heads=h, **NO_NORMS)
    core = layer.association_core
    (wq, wk, wv), (bq, bk, bv) = core.in_proj_weight.split(d), core.in_proj_bias.split(d)
    y, r = torch.randn(b, s, d), torch.randn(b, 8, d)

    def split(t):
        return t.view(t.shape[0], t.shape[1], h, d // h).transpose(1, 2).contiguous()

    def by_hand():
        k, v, q = split(F.linear(y, wk, bk)), split(F.linear(y, wv, bv)), split(F.linear(r, wq, bq))
        z = am.retrieve(k, q, layer.scaling, values=v)
        return core.out_proj(z.transpose(1, 2).reshape(b, 8, d))

    t = interleaved({"layer": lambda: layer((y, r, y)), "by hand": by_hand}, repeat)
    return row(f"4 heads, per-item patterns ({b}, {s}, {d}), 8 queries / by hand", t, "by hand", 1.1)


def steps(b: int, k: int, d: int, repeat: int) -> float:
    mem = memory(k, d)
    q = (mem[:b] + 0.3 * torch.randn(b, d) / d**0.5).unsqueeze(1)
    layer = Hopfield(
        scaling=8.0, update_steps_max=2, update_steps_eps=1e-30, update_steps_stop_on="state", **STATIC
    )
    inputs = (mem.expand(b, k, d), q, mem.expand(b, k, d))
    t = interleaved(
        {
            "layer": lambda: layer(inputs),
            "retrieve": lambda: am.retrieve(mem, q[:, 0], 8.0, steps=3, tol=1e-30),
        },
        repeat,
    )
    what = f"static, update_steps_max=2 (stop on the state), B={b} K={k} d={d} / retrieve(steps=3, tol)"
    return row(what, t, "retrieve", 1.1)


def huge(b: int) -> None:
    k, d = 10_000_000, 64
    with torch.inference_mode():
        mem = memory(k, d)
        q = (mem[:b] + 0.01 * torch.randn(b, d) / d**0.5).unsqueeze(1)
        layer = Hopfield(scaling=200.0, **STATIC)
        before = peak_resident_bytes()
        out = layer((mem.expand(b, k, d), q, mem.expand(b, k, d)))
        extra = peak_resident_bytes() - before
    size = mem.numel() * mem.element_size()
    err = float((out[:, 0] - mem[:b]).abs().max())
    print(f"static Hopfield on K={k} d={d}, B={b}: memory matrix {size / 2**30:.2f} GiB, peak memory of the forward "
          f"+{extra / 2**20:.0f} MiB ({extra / size:.1%} of it; target <= 10%); max |retrieved - stored| = "
          f"{err:.1e}; {load()}")  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--repeat", type=int, default=7)
    p.add_argument("--huge", action="store_true", help="also the peak memory at K = 10^7 (its own process)")
    p.add_argument("--huge-only", type=int, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.huge_only is not None:
        huge(a.huge_only)
        return
    print(f"torch {torch.__version__}, float32; ratio = layer / what it is compared with (ms: the latter)")
    with torch.inference_mode():
        for threads in a.threads:
            torch.set_num_threads(threads)
            print(f"\n{threads} thread(s), {load()}; {barrier_probe()}")
            worst = max(
                static(64, 65536, 64, 8.0, a.repeat),
                static(64, 1_000_000, 64, 8.0, a.repeat),
                static(1, 1_000_000, 64, 8.0, a.repeat),
                lookup(64, 65536, 64, True, a.repeat),
                lookup(64, 65536, 64, False, a.repeat),
                lookup(64, 1_000_000, 64, False, a.repeat),
                per_item(64, 8192, 64, 8.0, a.repeat),
                per_item(64, 8192, 256, 1.0, a.repeat),
                heads(32, 2048, 256, a.repeat),
                steps(64, 65536, 64, a.repeat),
            )
            print(
                f"worst ratio / its target on {threads} thread(s): {worst:.3f} (<= 1 meets every target); {load()}"
            )
    if a.huge:
        for b in (1, 64):
            subprocess.run([sys.executable, __file__, "--huge-only", str(b)], check=True)


if __name__ == "__main__":
    main()
