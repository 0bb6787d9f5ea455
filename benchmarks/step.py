"""Cost of one dynamics step of the microscopic network against the two matrix products it needs.

One step of ``tau dx/dt = u(x) - x`` for features ``v`` (784) and memories ``h`` (2,000 or 16,384), batch 256,
float32, needs ``xi g(v)`` (into h) and ``xi^T f(h)`` (into v): two (256 x 784) x (784 x K)-sized products. The
benchmark times, in the same run and interleaved:

- ``floor``: those two products alone (``g @ xi.T`` and ``f @ xi``);
- ``relax step``: what one Euler iteration of :func:`assocmem.relax` does (activations, forces, fused update,
  and the convergence check max |dx/dt|);
- ``velocity()+update``: the public API, ``net.velocity(state)`` then ``x + dt * v`` (validates its arguments);
- ``autograd step``: the same update with ``dE/dg`` taken by automatic differentiation of the energy, the way
  hamux and its PyTorch port compute it (a plain-PyTorch comparator, no closed-form forces);

and prints each as a ratio to the floor (median of interleaved repeats), first with the C library's default
allocator settings, then after :func:`assocmem.retain_freed_memory` (glibc otherwise re-maps every freed
multi-MB temporary: see ``assocmem/allocator.py``). The foundation issue's bar: at most 1.3x.
Run: ``.venv/bin/python benchmarks/step.py [--repeats R]``.
"""

import argparse
import statistics
import time

import torch

import assocmem as am
from assocmem.dynamics.steppers import METHODS
from assocmem.dynamics.system import System
from assocmem.models import microscopic


def timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def bench(feature, hidden, k, batch, repeats):
    gen = torch.Generator().manual_seed(0)
    xi = torch.randn(k, 784, generator=gen) / 28.0
    net = microscopic(xi, feature, hidden, tau_f=1.0, tau_h=0.5)
    state = {"v": torch.randn(batch, 784, generator=gen), "h": torch.randn(batch, k, generator=gen)}
    g, f = torch.tanh(state["v"]), torch.softmax(state["h"], dim=1)
    system = System(net, {}, {})
    euler = METHODS["euler"]
    ev = system(state)
    system.speed(ev)  # relax has computed u - x for the convergence check before it steps

    def floor():
        g @ xi.T
        f @ xi

    def relax_step():
        result = euler.step(system, ev, 0.05, False, 0.0, 0.0)
        system.speed(result.ev)

    def public():
        v = net.velocity(state)
        {n: state[n] + 0.05 * v[n] for n in state}

    def autograd_step():
        gs = {n: layer.activation(state[n]).detach().requires_grad_(True) for n, layer in net.layers.items()}
        energy = sum((state[n] * gs[n]).sum() for n in gs) + sum(t.energy(gs).sum() for t in net.synapses)
        grads = torch.autograd.grad(energy, list(gs.values()))
        {n: state[n] - (0.05 / net.layers[n].tau) * grad for n, grad in zip(gs, grads, strict=True)}

    fns = {
        "floor": floor,
        "relax step": relax_step,
        "velocity()+update": public,
        "autograd step": autograd_step,
    }
    for fn in fns.values():  # warm up
        fn()
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            times[name].append(timed(fn))
    med = {name: statistics.median(ts) for name, ts in times.items()}
    flops = 2 * 2 * batch * 784 * k
    return med, flops


def table(args):
    print(
        f"{'L_v':<9} {'L_h':<10} {'K':>6} {'floor ms':>9} {'GFLOP/s':>8} {'relax step':>11} {'velocity()+update':>18} "
        f"{'autograd step':>14}"
    )
    worst = 0.0
    for k in (2000, 16384):
        for fname, feature, hname, hidden in [
            ("Identity", am.Identity(), "LogSumExp", am.LogSumExp(1.0)),
            ("Tanh", am.Tanh(), "RePU(3)", am.RePU(3)),
            ("Tanh", am.Tanh(), "ReLU", am.ReLU()),
        ]:
            med, flops = bench(feature, hidden, k, args.batch, args.repeats)
            r_step = med["relax step"] / med["floor"]
            r_pub = med["velocity()+update"] / med["floor"]
            r_auto = med["autograd step"] / med["floor"]
            worst = max(worst, r_step)
            print(
                f"{fname:<9} {hname:<10} {k:>6} {med['floor'] * 1e3:>9.2f} {flops / med['floor'] / 1e9:>8.0f} "
                f"{r_step:>10.2f}x {r_pub:>17.2f}x {r_auto:>13.2f}x"
            )
    print(f"worst relax-step ratio: {worst:.2f}x (bar: 1.30x)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--batch", type=int, default=256)
    args = parser.parse_args()
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, float32, batch {args.batch}, "
        f"784 feature neurons"
    )
    print("\n[default allocator settings]")
    table(args)
    applied = am.retain_freed_memory()
    print(f"\n[after assocmem.retain_freed_memory(): {'applied' if applied else 'not available here'}]")
    table(args)


if __name__ == "__main__":
    main()
