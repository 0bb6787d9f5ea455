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
    energy rose beyond rounding on every other step, so the error names the step, not a missing lower bound, and
    it is no DivergenceError (the HAM command line would call that "not a memory"). dt = 0.1 settles the same input
    (to E = -96.1)."""
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
    except am.ConvergenceError as err:
        assert not isinstance(err, am.DivergenceError), (
            "a rising energy is the integrator's, not the network's"
        )
        message = str(err)
    else:
        raise AssertionError("dt = 0.5 settled: the case no longer cycles")
    assert "energy rose between two steps" in message and "smaller dt" in message
    assert "not bounded below" not in message and "says nothing of the network's energy" in message
    assert am.relax(net, state, dt=0.1, strict=True, **run).converged.all()


def test_a_rise_under_error_controlled_steps_asks_for_tighter_tolerances_not_a_smaller_dt():
    """An adaptive method chooses its own step, so "use a smaller dt, or dopri5" is no advice for a run that was
    dopri5: the error names rtol and atol instead (the fixed-step advice stays for fixed-step methods)."""
    net = spherical_net()
    watch, state, energy, speed = scaled_run(net, [1.0, 2.0, 3.0], rise_at=1)
    assert float(watch.rise.max()) >= 1.0
    told = {
        adaptive: watch.not_settled(net, {}, energy, speed, state, 1e-3, 9.0, "t_max=9", adaptive)
        for adaptive in (False, True)
    }
    for err in told.values():
        assert isinstance(err, am.ConvergenceError) and not isinstance(err, am.DivergenceError)
        assert "energy rose between two steps" in str(err)
    assert "smaller dt" in str(told[False]) and "rtol" not in str(told[False])
    assert "Tighten rtol and atol" in str(told[True]) and "smaller dt" not in str(told[True])


def _falling_and_speeding(net: am.Network, x0: dict[str, torch.Tensor]):
    """A Watch fed 5 steps whose speed grows (0.5 to 4.5) while the energy is not computed (a relaxation that does
    not record), ending 10 below its start: what a runaway and a cycle under a too-large step both look like."""
    speed0 = torch.full((2,), 0.5, dtype=F64)
    watch = Watch(net, net.energy(x0), speed0, x0)
    for k in range(5):
        watch.update(speed0 + k, None, x0)
    return watch.not_settled(net, {}, watch.energy0 - 10.0, speed0 + 4.0, x0, 1e-3, 1000.0, "t_max=1000")


def test_a_falling_energy_with_a_growing_speed_is_a_runaway_only_where_the_energy_is_not_certified():
    """The conv HAM (softmax labels at beta = 2 on feed-forward-trained weights) under exp_euler at dt = 2: one
    image's state cycled with its energy rising by no more than float32 rounding, and relax called it a runaway
    whose "energy is not bounded below", though its energy is certified bounded (dt = 0.5 or dopri5 settle it).
    Where bounded_below certifies the energy the error now names the step and is no DivergenceError; where it
    cannot, the same record is a runaway."""
    net = spherical_net()
    assert am.bounded_below(net).bounded
    err = _falling_and_speeding(net, start())
    message = str(err)
    assert isinstance(err, am.ConvergenceError) and not isinstance(err, am.DivergenceError)
    assert "not running off" in message and "smaller dt" in message and "'dopri5'" in message
    assert "the energy is bounded below" in message and "not bounded below" not in message
    assert re.search(r"energy fell from .* while max \|dx/dt\| grew from 0\.5 to 4\.5", message)

    gen = torch.Generator().manual_seed(1)
    w = torch.randn(3, 6, generator=gen, dtype=F64)
    loose = am.Network(  # ReLU - Identity coupled with norm 1.8: not certified
        {"h": am.Layer(6, am.ReLU()), "l": am.Layer(3, am.Identity())},
        [am.DenseSynapse("h", "l", 1.8 * w / torch.linalg.matrix_norm(w, 2))],
    )
    assert not am.bounded_below(loose).bounded
    x0 = {"h": torch.rand(2, 6, generator=gen, dtype=F64), "l": torch.zeros(2, 3, dtype=F64)}
    err = _falling_and_speeding(loose, x0)
    assert isinstance(err, am.DivergenceError)
    assert "ran away instead of settling" in str(err) and "not bounded below" in str(err)
