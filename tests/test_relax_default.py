"""relax's default integrator: the stiff method when the time constants differ by more than a factor of two,
else dopri5 (the crossover benchmarks/relax_default.py measures)."""

import pytest
import torch

import assocmem as am
from assocmem.data import flip_bits, sprites
from assocmem.dynamics.relax import STIFF_RATIO, auto_method
from assocmem.models import model_b


@pytest.mark.parametrize("tau_h", [0.05, 1 / 3])
def test_the_readme_two_layer_model_converges_by_default(tau_h):
    """README's example: model B with explicit memory neurons 20 times faster than the features, and 3 times
    (where dopri5 left every sample short of the stop rule at t_max = 100)."""
    patterns = sprites(48).flatten(1)
    cues = flip_bits(patterns, 0.2, generator=torch.Generator().manual_seed(0))
    net = model_b(patterns, beta=20 / 256, tau_h=tau_h)
    traj = am.relax(net, {"v": cues, "h": torch.zeros(48, 48)})
    assert traj.method == "stiff"
    assert bool(traj.converged.all()), traj
    assert int((traj.states["v"].sign() == patterns).all(dim=1).sum()) == 48


@pytest.mark.parametrize("method", [None, "auto"])
def test_equal_time_constants_pick_dopri5(method):
    xi = torch.randn(5, 12, dtype=torch.float64)
    net = model_b(xi, beta=2.0)
    state = {"v": torch.randn(3, 12, dtype=torch.float64), "h": torch.zeros(3, 5, dtype=torch.float64)}
    traj = am.relax(net, state, method=method)
    assert traj.method == "dopri5"
    assert bool(traj.converged.all())
    explicit = am.relax(net, state, method="dopri5")
    torch.testing.assert_close(traj.states["v"], explicit.states["v"], rtol=0, atol=0)
    assert am.relax(net.integrate_out("h"), {"v": state["v"]}).method == "dopri5"


@pytest.mark.parametrize(
    ("tau_h", "expected"),
    [(1.0, "dopri5"), (0.5, "dopri5"), (2.0, "dopri5"), (0.499, "stiff"), (2.01, "stiff"), (1e-3, "stiff")],
)
def test_the_rule_is_a_factor_of_two_either_way(tau_h, expected):
    assert STIFF_RATIO == 2.0
    assert auto_method({"v": 1.0, "h": tau_h}) == expected
    net = model_b(torch.randn(3, 4), tau_h=tau_h)
    assert am.relax(net, net.zero_state(2), t_max=1e-3, tol=0).method == expected


def test_an_explicit_method_is_kept_and_a_wrong_one_is_named():
    net = model_b(torch.randn(3, 4), tau_h=0.01)
    assert am.relax(net, net.zero_state(1), method="rk4", t_max=0.01, tol=0).method == "rk4"
    with pytest.raises(ValueError, match=r"unknown method 'fast'.*None for auto"):
        am.relax(net, net.zero_state(1), method="fast")
