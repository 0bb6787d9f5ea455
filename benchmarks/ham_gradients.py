"""Implicit gradient against backpropagation through 20 unrolled steps: time and peak memory, in one run.

    python benchmarks/ham_gradients.py                   # dense and convolutional HAM, batch 128, 1 thread
    python benchmarks/ham_gradients.py --threads 2 --repeat 7

Two hierarchical networks (float32, random weights, random images in [0, 1]), the image layer clamped:

- dense: 784 pixels - 1000 ReLU - 10 softmax labels;
- conv: 1x28x28 pixels - 5x5 convolution, stride 2, to 16x14x14 ReLU - 500 ReLU - 10 softmax labels.

Their couplings among ReLU layers are scaled to norm 0.9 by :class:`assocmem.dynamics.CouplingBound`, so the energy
is bounded below and every sample settles. The loss is the cross-entropy of the label layer's state. Modes:

- ``unrolled 20`` / ``unrolled 40``: 20 (40) exponential-Euler steps of dt = 0.5 with autograd recording them
  (a transient: not at the fixed point);
- ``unrolled fp``: the same steps until max |dx/dt| <= 1e-4 (the fixed point), autograd recording them;
- ``implicit``: exponential Euler until max |dx/dt| <= 1e-4, no graph; the backward pass solves the adjoint by
  conjugate gradients to a relative residual of 1e-4; ``implicit/2`` the same with dt = 0.25, twice the steps
  (the steps each mode took are printed).

Time: forward and backward of each mode, interleaved over ``--repeat`` rounds, medians; ratios to ``unrolled 20``.
Peak memory: each mode runs in a fresh subprocess; after a warm-up pass whose freed memory goes back to the
system (``malloc_trim``), the kernel's high-water mark is reset (``/proc/self/clear_refs``), one forward and
backward pass runs, and the peak resident memory above the resident memory before the pass is reported (the
parameters and data are in both), with the bytes autograd saved for the backward pass during the forward (each storage
once; Linux with glibc).
"""

from __future__ import annotations

import argparse
import ctypes
import json
import re
import statistics
import subprocess
import sys
import time

import torch
import torch.nn.functional as TF

import assocmem as am
from assocmem.dynamics import CouplingBound

BATCH = 128
SETTLE = {"method": "exp_euler", "tol": 1e-4, "t_max": 500.0, "strict": True}
MODES = {
    "unrolled 20": {"gradient": "unrolled", "method": "exp_euler", "dt": 0.5, "t_max": 10.0, "tol": 0},
    "unrolled 40": {"gradient": "unrolled", "method": "exp_euler", "dt": 0.5, "t_max": 20.0, "tol": 0},
    "unrolled fp": {"gradient": "unrolled", "dt": 0.5, **SETTLE},
    "implicit": {"gradient": am.dynamics.Implicit(tol=1e-4), "dt": 0.5, **SETTLE},
    "implicit/2": {"gradient": am.dynamics.Implicit(tol=1e-4), "dt": 0.25, **SETTLE},
}


def dense() -> am.Network:
    gen = torch.Generator().manual_seed(0)
    w1 = torch.randn(1000, 784, generator=gen) / 784**0.5
    w2 = torch.randn(10, 1000, generator=gen) / 1000**0.5
    return am.Network(
        {
            "image": am.Layer((1, 28, 28), am.Identity()),
            "h": am.Layer(1000, am.ReLU()),
            "label": am.Layer(10, am.LogSumExp()),
        },
        [
            am.DenseSynapse("image", "h", torch.nn.Parameter(w1)),
            am.DenseSynapse("h", "label", torch.nn.Parameter(w2)),
        ],
    )


def conv() -> am.Network:
    gen = torch.Generator().manual_seed(0)
    k = torch.randn(16, 1, 5, 5, generator=gen) / 5.0
    w1 = torch.randn(500, 16 * 14 * 14, generator=gen) / (16 * 14 * 14) ** 0.5
    w2 = torch.randn(10, 500, generator=gen) / 500**0.5
    return am.Network(
        {
            "image": am.Layer((1, 28, 28), am.Identity()),
            "c": am.Layer((16, 14, 14), am.ReLU()),
            "h": am.Layer(500, am.ReLU()),
            "label": am.Layer(10, am.LogSumExp()),
        },
        [
            am.ConvSynapse("image", "c", torch.nn.Parameter(k), stride=2, padding=2),
            am.DenseSynapse("c", "h", torch.nn.Parameter(w1)),
            am.DenseSynapse("h", "label", torch.nn.Parameter(w2)),
        ],
    )


NETWORKS = {"dense": dense, "conv": conv}


def setup(name: str) -> tuple[am.Network, dict[str, torch.Tensor], torch.Tensor]:
    net = NETWORKS[name]()
    CouplingBound(net, bound=0.9, clamp={"image": True})()
    gen = torch.Generator().manual_seed(1)
    state = net.zero_state(BATCH)
    state["image"] = torch.rand(BATCH, 1, 28, 28, generator=gen)
    labels = torch.randint(0, 10, (BATCH,), generator=gen)
    return net, state, labels


def forward(net, state, labels, mode: str):
    traj = am.relax(net, state, clamp={"image": True}, record=False, **MODES[mode])
    return TF.cross_entropy(traj.states["label"], labels), traj


def one_pass(net, state, labels, mode: str) -> tuple[float, float, int]:
    """Seconds of the forward and the backward pass, and the relaxation's steps."""
    net.zero_grad(set_to_none=True)
    start = time.perf_counter()
    loss, traj = forward(net, state, labels, mode)
    middle = time.perf_counter()
    loss.backward()
    return middle - start, time.perf_counter() - middle, int(traj.steps.max())


def _kib(field: str) -> int:
    return int(re.search(rf"{field}:\s+(\d+)", open("/proc/self/status").read()).group(1)) * 1024


def memory(name: str, mode: str) -> dict[str, int]:
    """Peak resident bytes of one forward and backward pass above the resident bytes before it (subprocess)."""
    net, state, labels = setup(name)
    one_pass(net, state, labels, mode)  # warm-up: library initialisation
    net.zero_grad(set_to_none=True)
    ctypes.CDLL("libc.so.6").malloc_trim(
        0
    )  # hand the warm-up's freed memory back, so "before" holds none of it
    saved = 0

    seen = set()

    def pack(t):  # count every storage once (the weights are saved by every step)
        nonlocal saved
        key = t.untyped_storage().data_ptr()
        if key not in seen:
            seen.add(key)
            saved += t.untyped_storage().nbytes()
        return t

    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the high-water mark
    before = _kib("VmRSS")
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss, _ = forward(net, state, labels, mode)
    loss.backward()
    return {"peak": _kib("VmHWM") - before, "saved": saved}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--memory", nargs=2, metavar=("NETWORK", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.memory:
        print(json.dumps(memory(*args.memory)))
        return
    print(
        f"torch {torch.__version__}, {args.threads} thread(s), float32, batch {BATCH}, {args.repeat} rounds"
    )
    for name in NETWORKS:
        net, state, labels = setup(name)
        times: dict[str, list[tuple[float, float]]] = {m: [] for m in MODES}
        steps = {}
        for m in MODES:
            one_pass(net, state, labels, m)  # warm-up
        for _ in range(args.repeat):
            for m in MODES:
                f, b, steps[m] = one_pass(net, state, labels, m)
                times[m].append((f, b))
        mem = {}
        for m in MODES:
            out = subprocess.run(
                [sys.executable, __file__, "--threads", str(args.threads), "--memory", name, m],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            mem[m] = json.loads(out.strip().splitlines()[-1])
        base = {
            "forward": statistics.median(f for f, _ in times["unrolled 20"]),
            "backward": statistics.median(b for _, b in times["unrolled 20"]),
        }
        base["total"] = statistics.median(f + b for f, b in times["unrolled 20"])
        print(f"\n{name} HAM")
        print(
            f"{'mode':<12} {'steps':>5} {'forward ms':>10} {'backward ms':>11} {'total/unr20':>11} "
            f"{'backward/unr20':>14} {'peak MB':>8} {'peak/unr20':>10} {'saved MB':>9}"
        )
        for m in MODES:
            fw = statistics.median(f for f, _ in times[m])
            bw = statistics.median(b for _, b in times[m])
            total = statistics.median(f + b for f, b in times[m])
            print(
                f"{m:<12} {steps[m]:>5} {1e3 * fw:>10.1f} {1e3 * bw:>11.1f} {total / base['total']:>10.2f}x "
                f"{bw / base['backward']:>13.2f}x {mem[m]['peak'] / 2**20:>8.1f} "
                f"{mem[m]['peak'] / mem['unrolled 20']['peak']:>9.3f}x {mem[m]['saved'] / 2**20:>9.1f}"
            )


if __name__ == "__main__":
    main()
