"""Integrators compared with well-kept libraries on the same problems, in one run (issue: foundation, Dynamics).

1. ``relax(method="stiff")`` against scipy's implicit Radau, BDF and LSODA on the microscopic model B network
   with tau_h / tau_f = 1e-2 .. 1e-5 (one sample, float64; scipy estimates Jacobians by finite differences).
2. ``relax(method="dopri5")`` against torchdiffeq's dopri5 (same tableau, same tolerances) on the reduced
   network, batch 64: (a) to a fixed horizon, (b) until every sample has settled (|dx/dt| <= tol), which
   torchdiffeq does with odeint_event.

Errors are measured against a tight reference; costs are velocity evaluations and wall-time ratios.
Run: ``.venv/bin/python benchmarks/solvers.py`` (a few minutes on 2 cores).
"""

import time

import numpy as np
import scipy.integrate
import torch
import torchdiffeq

import assocmem as am
from assocmem.models import model_b

torch.set_default_dtype(torch.float64)


def flat_field(net):
    """The network's velocity as a function of one flat float64 vector (for scipy and torchdiffeq)."""
    names = net.layer_names
    sizes = [net.layers[n].size for n in names]
    counter = {"n": 0}

    def unflat(y):
        return {
            n: p.reshape(-1, net.layers[n].size)
            for n, p in zip(names, torch.split(y, sizes, dim=-1), strict=True)
        }

    def f(y):
        counter["n"] += 1
        x = unflat(y)
        v = net.evaluate(x, {}, {}).velocity(net.tau)
        return torch.cat([v[n] for n in names], dim=-1)

    return f, unflat, counter


def stiff_vs_scipy(n_features, n_memories, ratios, rtols, beta):
    print(
        f"1. stiff vs scipy implicit solvers: microscopic model B, N={n_features} features, K={n_memories} memories, "
        f"one sample, t in [0, 5]"
    )
    print(
        f"{'tau_h/tau_f':>11} {'solver':>14} {'rtol':>6} {'rel. error':>10} {'evaluations':>12} {'time / stiff':>12}"
    )
    gen = torch.Generator().manual_seed(0)
    xi = torch.sign(torch.randn(n_memories, n_features, generator=gen))
    v0 = 0.5 * xi[:1] + 0.5 * torch.randn(1, n_features, generator=gen)
    n = n_features + n_memories
    for ratio in ratios:
        net = model_b(xi, beta=beta, tau_h=ratio)
        f, unflat, _ = flat_field(net)
        y0 = torch.cat([v0, torch.zeros(1, n_memories)], dim=1)[0]

        def rhs(t, y, f=f):
            return f(torch.from_numpy(y)[None])[0].numpy()

        ref = scipy.integrate.solve_ivp(rhs, (0, 5), y0.numpy(), method="Radau", rtol=1e-12, atol=1e-14).y[
            :, -1
        ]
        ref = torch.from_numpy(ref)
        scale = ref.abs().max().item()
        for rtol in rtols:
            t0 = time.perf_counter()
            traj = am.relax(
                net, unflat(y0[None]), method="stiff", t_max=5.0, tol=0, rtol=rtol, atol=rtol * 1e-2
            )
            t_stiff = time.perf_counter() - t0
            ours = torch.cat([traj.states["v"], traj.states["h"]], dim=1)[0]
            print(
                f"{ratio:>11g} {'assocmem stiff':>14} {rtol:>6g} {(ours - ref).abs().max() / scale:>10.1e} "
                f"{traj.evaluations:>12d} {1.0:>12.2f}"
            )
            for method in ("Radau", "BDF", "LSODA"):
                t0 = time.perf_counter()
                sol = scipy.integrate.solve_ivp(
                    rhs, (0, 5), y0.numpy(), method=method, rtol=rtol, atol=rtol * 1e-2
                )
                elapsed = time.perf_counter() - t0
                err = np.abs(sol.y[:, -1] - ref.numpy()).max() / scale
                evals = (
                    sol.nfev + (sol.njev or 0) * y0.numel()
                )  # finite-difference Jacobians cost n evaluations
                print(
                    f"{'':>11} {'scipy ' + method:>14} {rtol:>6g} {err:>10.1e} {evals:>12d} "
                    f"{elapsed / t_stiff:>12.2f}"
                )
    print(
        f"   (scipy evaluations include n = {n} per finite-difference Jacobian; times are ratios to 'stiff' at the "
        f"same rtol; errors relative to max |x| of a Radau rtol=1e-12 reference)\n"
    )


def dopri5_vs_torchdiffeq():
    print("2. dopri5 vs torchdiffeq dopri5: reduced model B, N=64, K=32, batch 64, float64")
    gen = torch.Generator().manual_seed(1)
    xi = torch.sign(torch.randn(32, 64, generator=gen))
    v0 = xi[torch.arange(64) % 32] * (1 - 2 * (torch.rand(64, 64, generator=gen) < 0.2))
    net = model_b(xi, beta=0.1, reduced=True)
    f, _, counter = flat_field(net)
    ref = am.relax(net, {"v": v0}, method="dopri5", t_max=5.0, tol=0, rtol=1e-12, atol=1e-14).states["v"]
    print("   (a) to t = 5, rtol = 1e-6, atol = 1e-8")
    t0 = time.perf_counter()
    ours = am.relax(net, {"v": v0}, method="dopri5", t_max=5.0, tol=0, rtol=1e-6, atol=1e-8)
    t_ours = time.perf_counter() - t0
    counter["n"] = 0
    t0 = time.perf_counter()
    theirs = torchdiffeq.odeint(
        lambda t, y: f(y), v0, torch.tensor([0.0, 5.0]), method="dopri5", rtol=1e-6, atol=1e-8
    )[-1]
    t_theirs = time.perf_counter() - t0
    print(
        f"       assocmem     error {(ours.states['v'] - ref).abs().max():.1e}  evaluations {ours.evaluations:5d}"
    )
    print(
        f"       torchdiffeq  error {(theirs - ref).abs().max():.1e}  evaluations {counter['n']:5d}  "
        f"time ratio torchdiffeq / assocmem {t_theirs / t_ours:.2f}"
    )
    tol = 1e-4
    print(f"   (b) until every sample has max |dx/dt| <= {tol:g} (rtol = 1e-6, atol = 1e-8)")
    t0 = time.perf_counter()
    ours = am.relax(net, {"v": v0}, method="dopri5", t_max=1e3, tol=tol, rtol=1e-6, atol=1e-8)
    t_ours = time.perf_counter() - t0
    counter["n"] = 0

    def event(t, y):
        return tol - (f(y).abs().amax(dim=1)).max()

    t0 = time.perf_counter()
    t_event, _ = torchdiffeq.odeint_event(
        lambda t, y: f(y), v0, torch.tensor(0.0), event_fn=event, method="dopri5", rtol=1e-6, atol=1e-8
    )
    t_theirs = time.perf_counter() - t0
    evals_event = counter["n"]
    print(
        f"       assocmem     settles at t = {float(ours.times[-1]):6.2f}, evaluations {ours.evaluations:5d} "
        f"(the energy of every step recorded)"
    )
    print(
        f"       torchdiffeq  settles at t = {float(t_event):6.2f}, evaluations {evals_event:5d} "
        f"(event function evaluations included), time ratio torchdiffeq / assocmem {t_theirs / t_ours:.2f}"
    )


if __name__ == "__main__":
    torch.set_num_threads(2)
    stiff_vs_scipy(32, 16, ratios=(1e-2, 1e-3, 1e-5), rtols=(1e-4, 1e-6), beta=0.4)
    stiff_vs_scipy(784, 2000, ratios=(1e-3,), rtols=(1e-4,), beta=0.05)
    dopri5_vs_torchdiffeq()
