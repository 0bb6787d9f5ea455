"""The cost of one evaluation: a fully clamped layer gets no force, and its drive is computed once per relaxation
(Network.prepare), with the same results as evaluating every term in full (float64)."""

import pytest
import torch

import assocmem as am
from assocmem.lagrangians.base import sum_features
from assocmem.network.plan import Plan, accepts_targets

DT = torch.float64


def full_evaluate(net, state, inputs, clamp, need_energy=True):
    """Every term in full at every call, clamps applied at the end: what evaluate did before plans."""
    g = {n: layer.activation(state[n]) for n, layer in net.layers.items()}
    u, energy = {}, None
    if need_energy:
        energy = sum(layer.legendre(state[n], g[n]) for n, layer in net.layers.items())
    for term in net.synapses:
        e, forces = term.energy_and_forces(g, inputs, need_energy)
        for n, f in forces.items():
            u[n] = f if n not in u else u[n] + f
        if need_energy:
            energy = energy + e
    for n, x in state.items():
        current = inputs.get(n)
        if current is not None:
            u[n] = current.expand_as(x) if n not in u else u[n] + current
            if need_energy:
                energy = energy - sum_features(current * g[n])
        elif n not in u:
            u[n] = torch.zeros_like(x)
        mask = clamp.get(n)
        if mask is True:
            u[n] = x
        elif mask is not None:
            u[n] = torch.where(mask, x, u[n])
    return u, energy


class Counting(am.ConvSynapse):
    """A convolution that counts its drives into each layer."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls = {}

    def drive(self, target, source):
        self.calls[target] = self.calls.get(target, 0) + 1
        return super().drive(target, source)


class Quadratic(am.EnergyTerm):
    """A custom closed form that predates ``targets``: its override must still work (extra forces dropped)."""

    def __init__(self, a, b):
        super().__init__()
        self.layers, self.name = (a, b), "quadratic"

    def energy(self, g, inputs=None):
        a, b = self.layers
        return 0.1 * (sum_features(g[a]) * sum_features(g[b]))

    def energy_and_forces(self, g, inputs=None, need_energy=True):
        a, b = self.layers
        sa, sb = sum_features(g[a]), sum_features(g[b])
        fa = -0.1 * sb.reshape(-1, *[1] * (g[a].dim() - 1)).expand_as(g[a])
        fb = -0.1 * sa.reshape(-1, *[1] * (g[b].dim() - 1)).expand_as(g[b])
        return (0.1 * sa * sb if need_energy else None), {a: fa, b: fb}


def hierarchy(seed=0, trainable=False):
    """Image -> conv -> pooling -> dense hidden -> tokens, a memory layer integrated out (a many-body term with
    the image as a neighbour), a recurrent synapse, a one-line term, a custom closed form, attention and a token
    memory: every kind of term, some touching the image."""
    gen = torch.Generator().manual_seed(seed)

    def w(*shape, scale=0.3):
        t = scale * torch.randn(*shape, dtype=DT, generator=gen)
        return torch.nn.Parameter(t) if trainable else t

    rec = torch.randn(5, 5, dtype=DT, generator=gen)
    layers = {
        "img": am.Layer((1, 6, 6), am.Identity()),
        "conv": am.Layer((2, 4, 4), am.ReLU()),
        "pool": am.Layer((2, 2, 2), am.Tanh(), tau=0.5),
        "hid": am.Layer(5, am.LogSumExp(beta=2.0)),
        "tok": am.Layer((3, 4), am.LayerNorm(dim=-1)),
        "mem": am.Layer(4, am.RePU(3), tau=0.1),
    }
    terms = [
        Counting("img", "conv", w(2, 1, 3, 3)),
        am.AvgPoolSynapse("conv", "pool", 2),
        am.DenseSynapse("pool", "hid", w(5, 8)),
        am.DenseSynapse("hid", "hid", 0.05 * (rec + rec.T)),
        am.DenseSynapse("hid", "tok", w(12, 5)),
        am.DenseSynapse("img", "mem", w(4, 36, scale=0.1)),
        am.DenseSynapse("hid", "mem", w(4, 5)),
        am.EnergyTerm.of(
            lambda g: 0.01 * (g["conv"] ** 2).sum((1, 2, 3)) * (g["img"] ** 2).sum((1, 2, 3)),
            "conv",
            "img",
            name="coupling",
        ),
        Quadratic("img", "hid"),
        am.AttentionTerm("tok", w(2, 3, 4), w(2, 3, 4), beta=0.9),
        am.HopfieldTerm("tok", w(6, 4), am.LogSumExp(beta=1.5)),
    ]
    return am.Network(layers, terms).integrate_out("mem")


def random_state(net, batch, seed):
    gen = torch.Generator().manual_seed(seed)
    return {n: torch.randn(batch, *layer.shape, dtype=DT, generator=gen) for n, layer in net.layers.items()}


def clamps(batch):
    gen = torch.Generator().manual_seed(9)
    partial = torch.rand(batch, 2, 4, 4, generator=gen) < 0.5  # units of an additive (ReLU) layer
    samples = torch.arange(batch).reshape(batch, 1) % 2 == 0  # whole samples of the softmax layer
    tokens = torch.rand(batch, 3, 1, generator=gen) < 0.5  # whole tokens of the per-token layer norm
    whole_by_mask = torch.ones(1, 1, 6, 6, dtype=torch.bool)
    return {
        "none": {},
        "image": {"img": True},
        "image-by-mask": {"img": whole_by_mask},
        "image-and-partial": {"img": True, "conv": partial, "hid": samples, "tok": tokens},
        "partial-only": {"conv": partial, "tok": tokens},
        "image-and-tokens": {"img": True, "tok": True},
        "all-but-hidden": {n: True for n in ("img", "conv", "pool", "tok")},
        "everything": {n: True for n in ("img", "conv", "pool", "hid", "tok")},
    }


@pytest.mark.parametrize("case", list(clamps(3)))
def test_evaluate_with_a_plan_equals_every_term_in_full(case):
    net = hierarchy()
    state = random_state(net, 3, seed=1)
    inputs = {
        "img": torch.randn(1, 6, 6, dtype=DT),
        "conv": torch.randn(3, 2, 4, 4, dtype=DT),
        "mem": torch.randn(4, dtype=DT),
    }
    inputs_, clamp_ = net.check(state, inputs, clamps(3)[case])
    plan = net.prepare(state, inputs_, clamp_)
    assert isinstance(plan, Plan) and dict(plan) == inputs_
    # The plan is reused at other states whose clamped layers hold their values (as they do under the dynamics).
    later = random_state(net, 3, seed=2)
    for n in plan.fixed:
        later[n] = state[n]
    for x in (state, later):
        expected_u, expected_e = full_evaluate(net, x, inputs_, clamp_)
        for source in (plan, inputs_):  # a plan, or plain inputs (a plan made on the spot)
            ev = net.evaluate(x, source, clamp_, need_energy=True)
            for n in net.layers:
                torch.testing.assert_close(ev.u[n], expected_u[n], rtol=1e-12, atol=1e-12)
            torch.testing.assert_close(ev.energy, expected_e, rtol=1e-12, atol=1e-12)
            torch.testing.assert_close(ev.energy, net.energy(x, inputs_), rtol=1e-12, atol=1e-12)
            assert net.evaluate(x, source, clamp_).energy is None


def test_a_relaxation_computes_the_clamped_drive_once_and_no_force_into_the_clamp():
    net = hierarchy()
    conv = next(t for t in net.synapses if isinstance(t, Counting))
    state = random_state(net, 2, seed=3)
    traj = am.relax(net, state, clamp={"img": True}, method="euler", dt=0.02, t_max=0.2, tol=0)
    assert traj.evaluations > 10
    assert conv.calls == {"conv": 1}  # once for the whole relaxation; never into the image
    conv.calls.clear()
    net.velocity(state, clamp={"img": True})  # a single evaluation makes its plan on the spot
    assert conv.calls == {"conv": 1}
    conv.calls.clear()
    net.velocity(state)  # nothing clamped: both directions
    assert conv.calls == {"conv": 1, "img": 1}


def test_a_term_is_not_differentiated_with_respect_to_a_clamped_layer():
    seen = []

    def energy(g):
        seen.append({n: g[n].requires_grad for n in ("v", "h")})
        return (g["v"] ** 2).sum(1) * (g["h"] ** 2).sum(1)

    net = am.Network(
        {"v": am.Layer(3, am.Tanh()), "h": am.Layer(2, am.Tanh())}, [am.EnergyTerm.of(energy, "v", "h")]
    )
    state = {"v": torch.randn(2, 3, dtype=DT), "h": torch.randn(2, 2, dtype=DT)}
    net.velocity(state, clamp={"v": True})
    assert seen[-1] == {"v": False, "h": True}
    net.velocity(state)
    assert seen[-1] == {"v": True, "h": True}


def test_gradients_through_a_plan_reach_the_weights_as_without_one():
    """The clamped layer's constant drive keeps its graph to the weights; a plan made with autograd off is remade."""
    net = hierarchy(trainable=True)
    state = random_state(net, 2, seed=4)
    inputs_, clamp_ = net.check(
        state,
        None,
        {"img": True, "conv": torch.rand(2, 4, 4, generator=torch.Generator().manual_seed(4)) < 0.5},
    )
    params = [p for p in net.parameters()]

    def grads(u, energy):
        loss = sum((t**2).sum() for t in u.values()) + energy.sum()
        return torch.autograd.grad(loss, params, allow_unused=True)

    expected = grads(*full_evaluate(net, state, inputs_, clamp_))
    with_grad = net.prepare(state, inputs_, clamp_)
    with torch.no_grad():
        without_grad = net.prepare(state, inputs_, clamp_)
    for plan in (with_grad, without_grad):
        ev = net.evaluate(state, plan, clamp_, need_energy=True)
        for got, want in zip(grads(ev.u, ev.energy), expected, strict=True):
            assert (got is None) == (want is None)
            if got is not None:
                torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)


def test_a_plan_with_another_clamp_is_an_error():
    net = hierarchy()
    state = random_state(net, 2, seed=5)
    inputs_, clamp_ = net.check(state, None, {"img": True})
    plan = net.prepare(state, inputs_, clamp_)
    with pytest.raises(ValueError, match="prepare a plan with the same clamp"):
        net.evaluate(state, plan, {})


def test_terms_send_forces_only_into_the_targets_with_the_same_energy():
    net = hierarchy()
    state = random_state(net, 2, seed=6)
    g = {n: layer.activation(state[n]) for n, layer in net.layers.items()}
    for term in net.synapses:
        if not accepts_targets(term):  # the custom override that predates targets
            assert isinstance(term, Quadratic)
            continue
        energy, forces = term.energy_and_forces(g, {})
        for targets in [set(term.layers[:1]), set(term.layers[1:]), set()]:
            e, f = term.energy_and_forces(g, {}, True, targets=targets)
            torch.testing.assert_close(e, energy, rtol=1e-12, atol=1e-12)
            assert set(f) == {n for n in forces if n in targets}, term.name
            for n in f:
                torch.testing.assert_close(f[n], forces[n], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", list(clamps(3)))
def test_without_autograd_the_sums_made_in_place_give_the_same_bits_and_leave_the_inputs_alone(case):
    """With autograd off evaluate adds into the tensors it made (and the built-in synapses' fresh drives) in place:
    the same additions in the same order, so the same bits; the plan's currents and the inputs are untouched."""
    net = hierarchy()
    state = random_state(net, 3, seed=8)
    inputs = {"img": torch.randn(1, 6, 6, dtype=DT), "conv": torch.randn(3, 2, 4, 4, dtype=DT)}
    inputs_, clamp_ = net.check(state, inputs, clamps(3)[case])
    plan = net.prepare(state, inputs_, clamp_)
    kept = {n: c.clone() for n, c in plan.currents.items()}
    given = {n: t.clone() for n, t in state.items()}
    with torch.enable_grad():
        expected = net.evaluate(state, plan, clamp_, need_energy=True)
    with torch.no_grad():
        got = net.evaluate(state, plan, clamp_, need_energy=True)
    for n in net.layers:
        assert torch.equal(got.u[n], expected.u[n]), n
    assert torch.equal(got.energy, expected.energy)
    for n, c in kept.items():
        assert torch.equal(plan.currents[n], c), n
    for n, t in given.items():
        assert torch.equal(state[n], t), n
