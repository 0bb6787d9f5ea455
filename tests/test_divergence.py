"""How a relaxation that blew up is reported (dynamics/divergence.py): a rise of the energy beyond its rounding is
the integrator's failure; a rise within the rounding of the terms the energy sums, at a state that grew by orders
of magnitude, is reported as the state's growth, naming the layer (float64)."""

import re

import torch

import assocmem as am
from assocmem.dynamics.divergence import Watch
from tests.trainable_networks import blobs, ham

F64 = torch.float64


def spherical_net() -> am.Network:
    """Spherical pixels ``v`` and softmax memories ``h``: the energy does not see the scale of ``v``'s state."""
    gen = torch.Generator().manual_seed(0)
    return am.Network(
        {"v": am.Layer(6, am.Spherical()), "h": am.Layer(3, am.LogSumExp(4.0))},
        [am.DenseSynapse("v", "h", torch.randn(3, 6, generator=gen, dtype=F64))],
    )


def start() -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    return {
        "v": torch.randn(2, 6, generator=gen, dtype=F64),
        "h": torch.randn(2, 3, generator=gen, dtype=F64),
    }


def scaled_run(net: am.Network, scales, rise_at: int | None = None):
    """A Watch fed the states ``x0`` with ``v`` scaled by each of ``scales``, their energies as the network
    computes them (equal but for rounding) and a speed that grows with the state, as in a runaway; with
    ``rise_at``, the energy at that step gets +1 (a genuine rise, at a state of moderate size)."""
    x0 = start()
    watch = Watch(net, net.energy(x0), torch.full((2,), 0.5, dtype=F64), x0)
    for k, scale in enumerate(scales):
        state = {"v": scale * x0["v"], "h": x0["h"]}
        energy = net.energy(state)
        if k == rise_at:
            energy = energy + 1.0
        speed = torch.full((2,), 0.5 * scale, dtype=F64)
        watch.update(speed, energy, state)
    return watch, state, energy, speed


def test_a_runaway_whose_energy_moves_by_rounding_is_told_by_the_states_growth():
    net = spherical_net()
    scales = [10.0**k for k in range(4, 150, 5)]
    watch, state, energy, speed = scaled_run(net, scales)
    assert float(watch.drift.max()) > 0, "the construction must show rounding-size rises"
    assert float(watch.rise.max()) == 0
    message = str(watch.blew_up(net, {}, energy, speed, "the state became non-finite at t=9", state))
    assert "energy rose" not in message and "smaller dt" not in message
    assert "state of layer 'v' grew from max |x| = " in message
    assert "within the rounding of the terms it sums" in message
    assert "direction the energy does not see" in message
    # the sizes it names are the state's at the start and at the end
    b = int(re.search(r"for sample (\d+)", message).group(1))
    first, last = float(start()["v"][b].abs().max()), float(state["v"][b].abs().max())
    assert f"grew from max |x| = {first:.3g} to {last:.3g}" in message


def test_a_rise_beyond_rounding_is_still_the_integrators():
    net = spherical_net()
    watch, state, energy, speed = scaled_run(net, [10.0**k for k in range(0, 60, 5)], rise_at=1)
    assert float(watch.rise.max()) >= 1.0
    message = str(watch.blew_up(net, {}, energy, speed, "the state became non-finite at t=9", state))
    assert "after the energy rose" in message and "smaller dt" in message


def test_a_run_that_cycles_with_a_rising_energy_is_told_as_the_step_not_an_unbounded_energy():
    """A certified-bounded network (ReLU hidden, sparsemax labels, label weights 40x the trainable networks' scale)
    whose fixed point exp_euler at dt = 0.5 overshoots on one input: the state falls into a 2-cycle between
    sparsemax supports, its speed grows and the energy ends below its start, which looks like a run-away; but the
    energy rose beyond rounding on every other step, so the error names the step, not a missing lower bound.
    dt = 0.1 settles the same input (to E = -96.1)."""
    net = ham(am.ReLU(), am.Sparsemax())
    with torch.no_grad():
        net.synapses[1].weight.mul_(40.0)
    assert am.bounded_below(net, clamp={"v": True}).bounded
    x, _ = blobs(256, seed=2)
    state = net.zero_state(1, dtype=F64)
    state["v"] = x[176:177]
    run = {"clamp": {"v": True}, "gradient": None, "method": "exp_euler", "tol": 1e-5, "t_max": 1000.0}
    try:
        am.relax(net, state, dt=0.5, strict=True, **run)
    except am.DivergenceError as err:
        message = str(err)
    else:
        raise AssertionError("dt = 0.5 settled: the case no longer cycles")
    assert "energy rose between two steps" in message and "smaller dt" in message
    assert "not bounded below" not in message
    assert am.relax(net, state, dt=0.1, strict=True, **run).converged.all()
