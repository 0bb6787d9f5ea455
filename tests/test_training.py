"""A trained network stays an associative memory: it learns through its dynamics with either gradient, its
energy stays bounded below (bounded Lagrangians or the coupling bound), and a run that diverges is an error."""

import pytest
import torch
import torch.nn.functional as TF

import assocmem as am
from assocmem.dynamics import ConvergenceError, CouplingBound, DivergenceError, bounded_below
from tests.trainable_networks import F64, blobs, ham

pytestmark = pytest.mark.usefixtures("one_thread")

#: Inference to a fixed point: exponential Euler with dt = tau/2 settles these networks in the fewest evaluations;
#: strict=True makes a sample that does not settle an error.
SETTLE = {"method": "exp_euler", "dt": 0.5, "tol": 1e-5, "t_max": 1000.0, "strict": True}


def _state(net, x):
    state = net.zero_state(x.shape[0], dtype=F64)
    state["v"] = x
    return state


def _train(net, gradient, steps, inputs=None, bound=None, lr=0.05, **relax):
    x, y = blobs(512, seed=1)
    params = list(net.parameters()) + list((inputs or {}).values())
    opt = torch.optim.Adam(params, lr=lr)
    gen = torch.Generator().manual_seed(4)
    for _ in range(steps):
        idx = torch.randint(0, len(y), (64,), generator=gen)
        traj = am.relax(
            net, _state(net, x[idx]), clamp={"v": True}, inputs=inputs, gradient=gradient, **relax
        )
        loss = TF.cross_entropy(traj.states["l"], y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        if bound is not None:
            bound()


def _test(net, inputs=None):
    """Relax every test input to its fixed point (strict); the accuracy there and the energy record."""
    x, y = blobs(256, seed=2)
    traj = am.relax(net, _state(net, x), clamp={"v": True}, inputs=inputs, gradient=None, **SETTLE)
    return float((traj.states["l"].argmax(1) == y).double().mean()), traj


@pytest.mark.parametrize("gradient", ["implicit", "unrolled"])
def test_a_dense_ham_learns_through_its_dynamics_and_stays_a_memory(gradient):
    """Clamped visible layer, Tanh hidden layer with a trainable bias current, softmax labels read out at the fixed
    point: every Lagrangian but the clamped one has a bounded activation, so the energy is bounded below whatever
    the weights. Chance is 1/4; 30 Adam steps reach about 0.97 with either gradient."""
    net = ham(am.Tanh(), am.LogSumExp())
    bias = {"h": torch.zeros(32, dtype=F64, requires_grad=True)}
    before, _ = _test(net, bias)
    _train(net, gradient, 30, inputs=bias, method="exp_euler", dt=0.5, tol=1e-5, t_max=200.0, strict=True)
    accuracy, traj = _test(net, bias)
    assert before < 0.6 < 0.9 <= accuracy
    assert traj.converged.all()  # strict=True would have raised otherwise
    assert (traj.speed <= 1e-5).all()
    energies = traj.energies
    assert (energies.diff(dim=0) <= 1e-9 * (1 + energies.abs()[1:])).all(), "the energy rose during inference"
    assert bias["h"].abs().max() > 0  # the input current learned too
    assert bounded_below(net, clamp={"v": True}).bounded


def test_a_relu_ham_trained_on_a_transient_loses_its_fixed_points_and_the_coupling_bound_keeps_them():
    """The failure the issue describes: ReLU hidden and Identity label layers trained through 10 unrolled Euler
    steps learn the task as a feed-forward net, but their coupling grows past 1, so the energy falls without bound:
    a strict relaxation says so instead of returning a result. The same training with CouplingBound after every
    optimizer step keeps the norm at 0.9, and every test input settles."""
    transient = {"method": "euler", "dt": 1.0, "t_max": 10.0, "tol": 0}
    free = ham(am.ReLU(), am.Identity())
    _train(free, "unrolled", 30, **transient)
    report = bounded_below(free, clamp={"v": True})
    assert not report.bounded and report.coupling > 1.1
    assert "coupling norm" in str(report) and "'h->l'" in str(report)
    with pytest.raises(DivergenceError, match=r"ran away instead of settling.*energy fell.*CouplingBound"):
        _test(free)

    bounded = ham(am.ReLU(), am.Identity())
    _train(bounded, "unrolled", 30, bound=CouplingBound(bounded, clamp={"v": True}), **transient)
    report = bounded_below(bounded, clamp={"v": True})
    assert report.bounded and report.coupling <= 0.9 + 1e-6
    accuracy, traj = _test(bounded)
    assert traj.converged.all() and accuracy >= 0.85
    assert (traj.energies.diff(dim=0) <= 1e-9 * (1 + traj.energies.abs()[1:])).all()


def _conv_matrix(synapse, shape):
    """The convolution as a dense matrix (columns: the drive of each unit vector)."""
    n = torch.Size(shape).numel()
    eye = torch.eye(n, dtype=F64).reshape(n, *shape)
    return synapse.drive(synapse.post, eye).reshape(n, -1).T


def test_bounded_below_measures_the_coupling_of_convolutions_and_the_bound_enforces_it():
    gen = torch.Generator().manual_seed(0)
    conv = am.ConvSynapse(
        "a", "b", torch.nn.Parameter(torch.randn(3, 2, 3, 3, generator=gen, dtype=F64)), padding=1
    )
    dense = am.DenseSynapse("b", "c", torch.nn.Parameter(torch.randn(5, 48, generator=gen, dtype=F64) / 7))
    net = am.Network(
        {
            "img": am.Layer((1, 4, 4), am.Identity()),
            "a": am.Layer((2, 4, 4), am.ReLU()),
            "b": am.Layer((3, 4, 4), am.ReLU()),
            "c": am.Layer(5, am.LogSumExp()),
        },
        [am.ConvSynapse("img", "a", torch.randn(2, 1, 3, 3, dtype=F64), padding=1), conv, dense],
    )
    with torch.no_grad():
        exact = float(torch.linalg.matrix_norm(_conv_matrix(conv, (2, 4, 4)), 2))
    report = bounded_below(net, clamp={"img": True})
    assert report.linear == ("a", "b")  # c is bounded, img clamped: only the conv couples two linear layers
    assert report.coupling == pytest.approx(exact, rel=1e-6)
    assert not report.bounded and exact > 1
    factor = CouplingBound(net, bound=0.8, clamp={"img": True})()
    assert factor == pytest.approx(0.8 / exact, rel=1e-6)
    with torch.no_grad():
        assert float(torch.linalg.matrix_norm(_conv_matrix(conv, (2, 4, 4)), 2)) == pytest.approx(
            0.8, rel=1e-6
        )
    assert bounded_below(net, clamp={"img": True}).bounded
    # unclamped, the image layer (Identity) joins the linear set through its fixed convolution
    assert bounded_below(net).linear == ("a", "b", "img")


def test_what_the_certificate_cannot_vouch_for():
    xi = torch.randn(3, 4, dtype=F64)
    quartic = am.EnergyTerm.of(lambda g: -(g["v"] ** 4).sum(1), "v")
    net = am.Network({"v": am.Layer(4, am.Identity())}, [quartic])
    assert "'custom_v'" in str(bounded_below(net)) and not bounded_below(net).bounded
    cubic = am.Network(
        {"v": am.Layer(4, am.RePU(3)), "h": am.Layer(3, am.ReLU())}, [am.DenseSynapse("v", "h", xi)]
    )
    assert "faster than linearly" in str(bounded_below(cubic))
    assert bounded_below(cubic, clamp={"h": True}).bounded  # linear in v alone: bounded
    with pytest.raises(ValueError, match=r"CouplingBound: .*faster than linearly"):
        CouplingBound(cubic)
    reduced = am.models.model_b(xi, beta=2.0, reduced=True)  # softmax many-body term: grows at most linearly
    assert bounded_below(reduced).bounded


def test_divergence_and_slow_runs_are_told_apart():
    gen = torch.Generator().manual_seed(1)
    w = torch.randn(3, 6, generator=gen, dtype=F64)
    w = 1.8 * w / torch.linalg.matrix_norm(w, 2)
    net = am.Network(
        {"h": am.Layer(6, am.ReLU()), "l": am.Layer(3, am.Identity())}, [am.DenseSynapse("h", "l", w)]
    )
    state = {"h": torch.rand(4, 6, generator=gen, dtype=F64), "l": torch.zeros(4, 3, dtype=F64)}
    with pytest.raises(DivergenceError, match=r"non-finite.*energy fell from .*grew.*CouplingBound"):
        am.relax(net, state, method="exp_euler", dt=0.5, t_max=1e4)
    with pytest.raises(DivergenceError, match="ran away"):
        am.relax(net, state, method="exp_euler", dt=0.5, t_max=20.0, strict=True)
    assert not am.relax(
        net, state, method="exp_euler", dt=0.5, t_max=20.0
    ).converged.all()  # a result if not strict
    calm = am.Network(
        {"h": am.Layer(6, am.ReLU()), "l": am.Layer(3, am.Identity())},
        [am.DenseSynapse("h", "l", 0.5 * w / 1.8)],
    )
    with pytest.raises(ConvergenceError, match=r"did not settle by t=2 .*raise t_max") as caught:
        am.relax(calm, state, method="exp_euler", dt=0.5, t_max=2.0, strict=True)
    assert not isinstance(caught.value, DivergenceError)
    # an explicit step beyond stability raises the energy: the advice is the step, not the energy
    stiff = am.Network(
        {"h": am.Layer(6, am.Tanh(), tau=0.01), "l": am.Layer(3, am.Identity())},
        [am.DenseSynapse("h", "l", w)],
    )
    with pytest.raises(DivergenceError, match=r"energy rose.*smaller dt"):
        am.relax(stiff, state, method="euler", dt=0.1, t_max=50.0)
    with pytest.raises(ValueError, match=r"strict=True .* tol must be positive"):
        am.relax(calm, state, tol=0, strict=True)


@pytest.mark.parametrize("labels", [am.Sparsemax(), am.Entmax15()], ids=["sparsemax", "entmax15"])
def test_sparse_label_layers_are_bounded_like_softmax_and_their_memory_settles(labels):
    """Sparsemax and 1.5-entmax activations lie on the simplex, as the softmax's: a ReLU hidden layer coupled to
    them alone is certified bounded below at any weight scale (a ReLU-Identity pair is not), and a relaxation with
    large weights settles, its energy never rising (dt = 0.1: at this gain exp_euler's dt = 0.5 oscillates between
    sparsemax supports on one of the 256 inputs)."""
    net = ham(am.ReLU(), labels)
    with torch.no_grad():
        net.synapses[1].weight.mul_(40.0)
    assert bounded_below(net, clamp={"v": True}).bounded
    unbounded = ham(am.ReLU(), am.Identity())
    with torch.no_grad():
        unbounded.synapses[1].weight.mul_(40.0)
    assert not bounded_below(unbounded, clamp={"v": True}).bounded
    x, _ = blobs(256, seed=2)
    traj = am.relax(net, _state(net, x), clamp={"v": True}, gradient=None, **{**SETTLE, "dt": 0.1})
    assert traj.converged.all()
    assert (traj.energies.diff(dim=0) <= 1e-9 * (1 + traj.energies.abs()[1:])).all()
