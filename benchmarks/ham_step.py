"""Cost of one relaxation step of a hierarchical associative memory against the linear maps it needs.

Three networks at batch 128, float32, the image layer clamped (classification: the image is given, the rest
relaxes):

- ``conv``: image (1, 28, 28) -> 5x5 convolution, 16 channels (16, 24, 24) ReLU -> 2x2 average pooling
  (16, 12, 12) ReLU -> 500 ReLU -> 10 labels (softmax); feedback through the adjoints.
- ``conv2``: the same with a second 5x5 convolution, 32 channels (32, 8, 8), between the pooling and the 500
  hidden units, so that a convolution and its transposed convolution run at every step.
- ``dense``: image 784 -> 1000 ReLU -> 10 labels (softmax).

With the image clamped, one step needs only the maps between moving layers, both ways: pooling and its adjoint,
the second convolution and its transposed convolution, the dense products. The drive out of the image (the first
convolution, or the 784 x 1000 product) is a constant of the relaxation, computed once by ``Network.prepare``.
Timed in the same run, interleaved (median of the repeats), at 1 and 2 threads:

- ``floor``: those maps alone, written as the fastest plain PyTorch expressions we know (``F.conv2d``,
  ``F.conv_transpose2d``, matrix products; pooling and its adjoint as strided sums and copies, which on CPU are
  several times faster than ``F.avg_pool2d`` and a depthwise transposed convolution: both are printed too);
- ``hand step``: one explicit Euler step written by hand in plain PyTorch for this network (activations, those
  maps, the constant drive added, the update, the stop rule's max |dx/dt|), the same output as relax's step;
- ``relax step``: what one Euler iteration of :func:`assocmem.relax` does without a graph (inference, implicit
  gradients): ``System`` with the plan, spending each evaluation's memory (``Evaluation.spend``), then the stop
  rule's speed taken from the small layers, which decide it while some sample is above ``tol`` (here: always);
- ``full stop``: the same with the speed of every layer (the steps at the end of a relaxation, where the small
  layers are all below ``tol``);
- ``no plan``: an Euler step with every term evaluated in full and the clamp applied afterwards (what
  ``Network.evaluate`` did before plans: the image's drive recomputed and the force into the image discarded).

Every timed call starts from a fresh evaluation made outside the timing (the step reuses its memory). At one
thread the times are the thread's CPU time (``time.thread_time``: a machine loaded by other jobs preempts the
thread, which wall time would count); at two, wall time. The issue's bar (conv network): relax step at most 1.3x
the floor. Run: ``.venv/bin/python benchmarks/ham_step.py [--repeats R] [--threads 1 2]``.
"""

import argparse
import statistics
import time

import torch
from torch.nn import functional as TF

import assocmem as am
from assocmem.dynamics.steppers import METHODS
from assocmem.dynamics.system import System
from assocmem.network import Evaluation

BATCH = 128
DT = 0.1
TOL = 1e-3  #: the stop rule's tolerance (every sample of the random state is far above it)


def conv_net(second_conv: bool) -> am.Network:
    gen = torch.Generator().manual_seed(0)
    layers = {
        "image": am.Layer((1, 28, 28), am.Identity()),
        "conv": am.Layer((16, 24, 24), am.ReLU()),
        "pool": am.Layer((16, 12, 12), am.ReLU()),
        "hidden": am.Layer(500, am.ReLU()),
        "labels": am.Layer(10, am.LogSumExp()),
    }
    terms = [
        am.ConvSynapse("image", "conv", 0.1 * torch.randn(16, 1, 5, 5, generator=gen)),
        am.AvgPoolSynapse("conv", "pool", 2),
    ]
    below = "pool"
    if second_conv:
        layers = {**layers, "conv2": am.Layer((32, 8, 8), am.ReLU())}
        terms.append(am.ConvSynapse("pool", "conv2", 0.05 * torch.randn(32, 16, 5, 5, generator=gen)))
        below = "conv2"
    n_below = 2048 if second_conv else 2304
    terms += [
        am.DenseSynapse(below, "hidden", torch.randn(500, n_below, generator=gen) / n_below**0.5),
        am.DenseSynapse("hidden", "labels", torch.randn(10, 500, generator=gen) / 500**0.5),
    ]
    return am.Network(layers, terms)


def dense_net() -> am.Network:
    gen = torch.Generator().manual_seed(0)
    return am.Network(
        {
            "image": am.Layer(784, am.Identity()),
            "hidden": am.Layer(1000, am.ReLU()),
            "labels": am.Layer(10, am.LogSumExp()),
        },
        [
            am.DenseSynapse("image", "hidden", torch.randn(1000, 784, generator=gen) / 28.0),
            am.DenseSynapse("hidden", "labels", torch.randn(10, 1000, generator=gen) / 1000**0.5),
        ],
    )


def pool_sum(x: torch.Tensor) -> torch.Tensor:
    """2x2 average pooling as two strided sums (rows, then columns)."""
    b, c, h, w = x.shape
    rows = x.view(b, c, h // 2, 2, w)
    s = (rows[:, :, :, 0] + rows[:, :, :, 1]).view(b, c, h // 2, w // 2, 2)
    return (s[..., 0] + s[..., 1]).mul_(0.25)


def pool_spread(y: torch.Tensor) -> torch.Tensor:
    """Its adjoint: each value times 1/4 copied into its 2x2 window."""
    b, c, h, w = y.shape
    scaled = y * 0.25
    out = y.new_empty(b, c, 2 * h, 2 * w)
    tiles = out.view(b, c, h, 2, w, 2)
    for i in range(2):
        for j in range(2):
            tiles[:, :, :, i, :, j] = scaled
    return out


def parts(net: am.Network, kind: str, state: dict) -> tuple:
    """(floor, hand step) closures for the network."""
    w = {t.name: t.weight for t in net.synapses if hasattr(t, "weight")}
    g = {n: layer.activation(state[n]) for n, layer in net.layers.items()}
    labels_w = w["hidden->labels"]
    if kind == "dense":
        constant = g["image"] @ w["image->hidden"].T

        def floor():
            g["hidden"] @ labels_w.T
            g["labels"] @ labels_w

        def hand():
            x = state
            gh, gl = torch.relu(x["hidden"]), torch.softmax(x["labels"], 1)
            u_h = torch.addmm(constant, gl, labels_w)
            u_l = gh @ labels_w.T
            return _update(x, {"hidden": u_h, "labels": u_l})

        return floor, hand
    below = "conv2" if kind == "conv2" else "pool"
    up = w[f"{below}->hidden"]
    constant = TF.conv2d(g["image"], w["image->conv"])
    c2 = w.get("pool->conv2")

    def floor():
        pool_sum(g["conv"])
        pool_spread(g["pool"])
        if c2 is not None:
            TF.conv2d(g["pool"], c2)
            TF.conv_transpose2d(g["conv2"], c2)
        g[below].flatten(1) @ up.T
        g["hidden"] @ up
        g["hidden"] @ labels_w.T
        g["labels"] @ labels_w

    def hand():
        x = state
        a = {n: torch.relu(x[n]) for n in ("conv", "pool", "hidden", *(("conv2",) if c2 is not None else ()))}
        a["labels"] = torch.softmax(x["labels"], 1)
        u = {"conv": constant + pool_spread(a["pool"]), "pool": pool_sum(a["conv"])}
        from_hidden = (a["hidden"] @ up).view(x[below].shape)
        if c2 is not None:
            u["pool"] += TF.conv_transpose2d(a["conv2"], c2)
            u["conv2"] = TF.conv2d(a["pool"], c2) + from_hidden
        else:
            u["pool"] += from_hidden
        u["hidden"] = torch.addmm(a["labels"] @ labels_w, a[below].flatten(1), up.T)
        u["labels"] = a["hidden"] @ labels_w.T
        return _update(x, u)

    return floor, hand


def _update(x: dict, u: dict) -> tuple:
    """Euler update of the moving layers and the stop rule's max |dx/dt| per sample."""
    speed = None
    new = {}
    for n, target in u.items():
        d = target - x[n]
        new[n] = torch.add(x[n], d, alpha=DT)
        flat = d.flatten(1)
        s = torch.maximum(flat.amax(1), flat.amin(1).neg())
        speed = s if speed is None else torch.maximum(speed, s)
    return new, speed


def bench(kind: str, repeats: int) -> dict:
    net = dense_net() if kind == "dense" else conv_net(kind == "conv2")
    gen = torch.Generator().manual_seed(1)
    state = {n: torch.randn(BATCH, *layer.shape, generator=gen) for n, layer in net.layers.items()}
    inputs_, clamp_ = net.check(state, None, {"image": True})
    euler = METHODS["euler"]
    spending = System(net, net.prepare(state, inputs_, clamp_), clamp_, spend=True)
    unplanned = System(net, net.prepare(state, inputs_, {}), clamp_)  # nothing held: every term in full
    floor, hand = parts(net, kind, state)
    # The hand step gives relax's update (a check that it does the same work).
    new, _ = hand()
    for bound in (TOL, None):
        ev = spending(state)
        spending.speed(ev, bound)
        step = euler.step(spending, ev, DT, False, 0.0, 0.0).ev.state
        for n, t in new.items():
            torch.testing.assert_close(t, step[n], rtol=1e-4, atol=1e-5)

    def evaluated(system: System, bound: float | None):
        def setup() -> Evaluation:  # relax has taken the stop rule's speed before it steps
            ev = system(state)
            system.speed(ev, bound)
            return ev

        return setup

    def step_then(system: System, bound: float | None):
        return lambda ev: system.speed(euler.step(system, ev, DT, False, 0.0, 0.0).ev, bound)

    fns = {
        "floor": (None, floor),
        "hand step": (None, hand),
        "relax step": (evaluated(spending, TOL), step_then(spending, TOL)),
        "full stop": (evaluated(spending, None), step_then(spending, None)),
        "no plan": (evaluated(unplanned, None), step_then(unplanned, None)),
    }
    if kind != "dense":
        g_conv, g_pool = torch.relu(state["conv"]), torch.relu(state["pool"])
        kernel = torch.full((16, 1, 2, 2), 0.25)
        fns["avg_pool2d + conv_t"] = (
            None,
            lambda: (TF.avg_pool2d(g_conv, 2), TF.conv_transpose2d(g_pool, kernel, None, 2, 0, 0, 16)),
        )
        fns["strided pool + adjoint"] = (None, lambda: (pool_sum(g_conv), pool_spread(g_pool)))
    clock = time.thread_time if torch.get_num_threads() == 1 else time.perf_counter
    with torch.no_grad():
        for setup, fn in fns.values():
            fn(*(() if setup is None else (setup(),)))
        times = {name: [] for name in fns}
        for _ in range(repeats):
            for name, (setup, fn) in fns.items():
                args = () if setup is None else (setup(),)
                start = clock()
                fn(*args)
                times[name].append(clock() - start)
    return {name: statistics.median(ts) for name, ts in times.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    am.retain_freed_memory()
    print(
        f"torch {torch.__version__}, float32, batch {BATCH}, image clamped, median of {args.repeats} repeats; "
        f"1 thread: thread CPU time, 2 threads: wall time"
    )
    print(
        "columns after the floor: ratios to it; pooling: both directions, avg_pool2d + conv_t vs strided (ms)"
    )
    worst = 0.0
    for threads in args.threads:
        torch.set_num_threads(threads)
        print(f"\n[{threads} thread{'s' if threads > 1 else ''}]")
        print(
            f"{'network':<7} {'floor ms':>9} {'hand step':>10} {'relax step':>11} {'full stop':>10} {'no plan':>8}"
            f"  {'pooling':>14}"
        )
        for kind in ("conv", "conv2", "dense"):
            med = bench(kind, args.repeats)
            f = med["floor"]
            ratio = med["relax step"] / f
            pooling = "-"
            if kind != "dense":
                worst = max(worst, ratio) if threads == 1 else worst
                pooling = (
                    f"{med['avg_pool2d + conv_t'] * 1e3:.2f} / {med['strided pool + adjoint'] * 1e3:.2f}"
                )
            print(
                f"{kind:<7} {f * 1e3:>9.2f} {med['hand step'] / f:>9.2f}x {ratio:>10.2f}x "
                f"{med['full stop'] / f:>9.2f}x {med['no plan'] / f:>7.2f}x  {pooling:>14}"
            )
    if 1 in args.threads:
        print(
            f"\nworst relax-step ratio of the convolutional networks at 1 thread: {worst:.2f}x (bar: 1.30x)"
        )


if __name__ == "__main__":
    main()
