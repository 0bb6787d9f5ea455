"""The DAM classifier's one-step class update (KH16): against the general energy, its gradients, the duality, XOR.
Binary pixels against model A and BinaryDAM, for each F, are rows of the engine x preset table (test_engines.py)."""

import warnings

import pytest
import torch
from torch import nn

import assocmem as am
from assocmem.classifier import DAMClassifier
from assocmem.classifier.class_update import Kernels, class_fields, fields_reference
from assocmem.classifier.model import Activation
from assocmem.classifier.training import loss_gradient
from assocmem.models import interaction, model_a

F64 = torch.float64


def clamped_states(v: torch.Tensor, classes: int, x0: float, a: int, value: float) -> torch.Tensor:
    """Visible state: the pixels, every class neuron at x0 except class a at value."""
    c = torch.full((v.shape[0], classes), x0, dtype=v.dtype)
    c[:, a] = value
    return torch.cat([v, c], 1)


def energy_fields(model: DAMClassifier, v: torch.Tensor, feature: am.Lagrangian) -> torch.Tensor:
    """beta (E(x_a = x0) - E(x_a = -x0)) from model A's energy (the general network, h integrated out)."""
    net = model_a(model.memories.detach(), interaction(model.kind, model.n), feature=feature, reduced=True)
    x0, beta = model.class_state, model.temperature ** (-model.n)
    cols = []
    for a in range(model.classes):
        e_start = net.energy({"v": clamped_states(v, model.classes, x0, a, x0)})
        e_flip = net.energy({"v": clamped_states(v, model.classes, x0, a, -x0)})
        cols.append(beta * (e_start - e_flip))
    return torch.stack(cols, 1)


@pytest.mark.parametrize("x0", [-1.0, -0.3])
def test_class_update_with_grey_pixels_and_any_initial_class_state(x0):
    """Pixels in [-1, 1]: with L_v = 1/2 |v|^2 the Legendre term is the same for x_a = +-x0 and cancels."""
    gen = torch.Generator().manual_seed(1)
    xi = torch.rand(11, 20, generator=gen, dtype=F64) * 2 - 1
    model = DAMClassifier(xi, pixels=17, classes=3, n=3, temperature=2.5, class_state=x0)
    v = torch.rand(5, 17, generator=gen, dtype=F64) * 2 - 1
    torch.testing.assert_close(model.fields(v), energy_fields(model, v, am.Identity()))
    assert model.predict(v).tolist() == model(v).argmax(1).tolist()


@pytest.mark.parametrize(("F", "n"), [("power", 3), ("power", 4), ("rectified", 3), ("rectified", 4.5)])
def test_gradients_match_autograd(F, n):
    gen = torch.Generator().manual_seed(3)
    L = interaction(F, n)
    hs = (torch.rand(5, 7, generator=gen, dtype=F64) * 2 - 0.8).requires_grad_()
    ds = (torch.rand(3, 7, generator=gen, dtype=F64) * 0.4 - 0.2).requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b: class_fields(a, b, Kernels(L)), (hs, ds))
    # the training loop's closed-form loss gradient against autograd through the plain formula
    model = DAMClassifier(8, pixels=10, classes=3, n=n, F=F, temperature=1.7, dtype=F64, generator=gen)
    v = torch.rand(6, 10, generator=gen, dtype=F64) * 2 - 1
    t = -torch.ones(6, 3, dtype=F64)
    t[torch.arange(6), torch.arange(6) % 3] = 1.0
    hs, ds = model.scaled_inputs(v)
    c = torch.tanh(fields_reference(model.interaction, hs, ds))
    ((c - t) ** 4).sum().backward()
    g = loss_gradient(model, v, t, m=2)
    torch.testing.assert_close(g.c, c.detach())
    assert g.loss == pytest.approx(float(((c - t) ** 4).sum().detach()), rel=1e-12)
    torch.testing.assert_close(g.full(), model.memories.grad)


def test_compiled_kernels_agree_with_eager():
    gen = torch.Generator().manual_seed(4)
    model = DAMClassifier(64, pixels=30, classes=10, n=3, temperature=10.0, generator=gen)
    v = torch.rand(40, 30, generator=gen) * 2 - 1
    t = -torch.ones(40, 10)
    t[torch.arange(40), torch.arange(40) % 10] = 1.0
    eager = loss_gradient(model, v, t, m=3)
    model.kernels.compiled = True
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # a fallback to eager would warn
        fused = loss_gradient(model, v, t, m=3)
    assert model.kernels.compiled, "torch.compile fell back to the eager kernels"
    for a, b in ((eager.c, fused.c), (eager.full(), fused.full()), (eager.scale, fused.scale)):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_degree_30_is_safe_in_float32():
    """beta = 540^-30 underflows float32 and (xi . v)^30 overflows it; the scaled form F(x / T) does neither."""
    assert torch.tensor(540.0) ** -30 == 0 and torch.isinf(torch.tensor(700.0) ** 30)
    gen = torch.Generator().manual_seed(5)
    v = torch.sign(torch.randn(8, 784, generator=gen, dtype=F64))
    # prototypes: memories close to the images, so that xi . v reaches ~700 (h / T ~ 1.3 at T = 540)
    noise = torch.where(torch.rand(8, 784, generator=gen) < 0.05, -1.0, 1.0).to(F64)
    xi = torch.cat([torch.cat([v * noise, torch.rand(8, 10, generator=gen, dtype=F64) * 2 - 1], 1)] * 3)
    xi = torch.cat([xi, torch.rand(40, 794, generator=gen, dtype=F64) * 2 - 1])
    t = -torch.ones(8, 10, dtype=F64)
    t[:, 3] = 1.0
    results = {}
    for dtype in (torch.float32, F64):
        model = DAMClassifier(xi.to(dtype), n=30, temperature=540.0)
        with torch.no_grad():
            fields = model.fields(v.to(dtype))
        g = loss_gradient(model, v.to(dtype), t.to(dtype), m=30)
        results[dtype] = (fields, g.pixels, g.classes)
    assert float((v @ xi[:, :784].T).max()) > 600  # unscaled, h^30 would be inf in float32
    (z32, *g32), (z64, *g64) = results[torch.float32], results[F64]
    assert all(torch.isfinite(x).all() for x in (z32, *g32))
    # F(hs + ds) - F(hs) loses float32 digits to cancellation (|z| ~ 1000 here, accurate to ~1e-4 of it) ...
    torch.testing.assert_close(z32.double(), z64, rtol=2e-3, atol=1e-4 * float(z64.abs().max()))
    # ... and dloss/dz ~ (c - t)^59 multiplies that error by ~120: the gradients agree to a percent, and per
    # memory in direction (what the per-memory normalised update uses) much better
    for low, high in zip(g32, g64, strict=True):
        low = low.double()
        assert float((low - high).norm() / high.norm()) < 0.02
        moved = high.norm(dim=1) > 1e-30  # in the scaled form: relative to the bound of the memory's terms
        cosine = (low * high).sum(1)[moved] / (low.norm(dim=1) * high.norm(dim=1))[moved]
        assert float(cosine.min()) > 0.999 and int(moved.sum()) > 40


def test_duality_with_a_feedforward_network():
    """KH16 s5: as x0 -> 0 with beta = 1/(2|x0|), the class update is tanh(xi_c^T F'(xi_v v))."""
    gen = torch.Generator().manual_seed(6)
    xi = torch.rand(30, 25, generator=gen, dtype=F64) * 2 - 1
    v = torch.rand(7, 20, generator=gen, dtype=F64) * 2 - 1
    for F, n in (("rectified", 2), ("rectified", 3), ("power", 3)):
        L = interaction(F, n)
        dual = torch.tanh(L.dF(v @ xi[:, :20].T) @ xi[:, 20:])  # the network, written with plain torch
        gaps = []
        for eps in (1e-2, 1e-3, 1e-4):
            model = DAMClassifier(
                xi, pixels=20, classes=5, n=n, F=F, temperature=(2 * eps) ** (1 / n), class_state=-eps
            )
            net = model.to_feedforward()
            assert [type(m) for m in net] == [nn.Linear, Activation, nn.Linear, nn.Tanh]
            with torch.no_grad():
                torch.testing.assert_close(net(v), dual)
                gaps.append(float((model(v) - dual).abs().max()))
        assert gaps[2] < gaps[1] / 5 < gaps[0] / 25, (
            gaps
        )  # the classifier tends to the network, linearly in x0
        assert gaps[2] < 1e-2
    # ReP_2's dual activation is the ReLU (times 2)
    x = torch.linspace(-2, 2, 9)
    torch.testing.assert_close(Activation(am.RePU(2))(x), 2 * torch.relu(x))
    # away from the limit the network is only an approximation of the classifier
    model = DAMClassifier(xi, pixels=20, classes=5, n=3, temperature=3.0)
    with torch.no_grad():
        assert not torch.allclose(model.to_feedforward()(v), model(v), atol=1e-3)


XOR_MEMORIES = torch.tensor([[-1.0, -1, -1], [-1, 1, 1], [1, -1, 1], [1, 1, -1]], dtype=F64)
XOR_INPUTS = torch.tensor([[-1.0, -1], [-1, 1], [1, -1], [1, 1]], dtype=F64)


@pytest.mark.parametrize(
    ("F", "n"), [("power", 2), ("power", 3), ("power", 4), ("power", 5), ("rectified", 2), ("rectified", 3)]
)
def test_xor_with_three_neurons(F, n):
    """KH16's XOR: z = Sign[E(x, y, -1) - E(x, y, +1)] = Sign[-xy] for odd powers and rectified n >= 2."""
    model = DAMClassifier(XOR_MEMORIES, pixels=2, classes=1, n=n, F=F)
    fields = model.fields(XOR_INPUTS)[:, 0]
    torch.testing.assert_close(fields[:, None], energy_fields(model, XOR_INPUTS, am.Abs()))
    xy = XOR_INPUTS.prod(1)
    if F == "power" and n % 2 == 0:
        assert torch.equal(fields, torch.zeros(4, dtype=F64))  # even powers cannot tell
    else:
        assert torch.equal(torch.sign(fields), -xy)
        assert model.predict(XOR_INPUTS).tolist() == [0, 1, 1, 0]


def test_bad_arguments_get_clear_errors():
    with pytest.raises(ValueError, match="F must be 'power' or 'rectified'"):
        DAMClassifier(4, F="exp")
    with pytest.raises(ValueError, match="memories must have shape"):
        DAMClassifier(torch.zeros(4, 5), pixels=3, classes=3)
    with pytest.raises(ValueError, match="class_state"):
        DAMClassifier(4, class_state=0.5)
    with pytest.raises(ValueError, match="temperature must be a positive"):
        DAMClassifier(4, temperature=-1)
    with pytest.raises(ValueError, match="integer degree"):
        DAMClassifier(4, F="power", n=2.5)
    model = DAMClassifier(4, pixels=6, classes=2)
    with pytest.raises(ValueError, match="6 pixels per image"):
        model(torch.zeros(3, 7))
    with pytest.raises(TypeError, match="to_pixels"):
        model(torch.zeros(3, 6, dtype=torch.uint8))
    with pytest.raises(TypeError, match="must match the memories"):
        model(torch.zeros(3, 6, dtype=F64))
    assert model(torch.zeros(2, 2, 3)).shape == (2, 2)  # images (B, *shape) are flattened


def test_compile_cache_outlives_the_temporary_folder_and_one_thread_restores_the_count(monkeypatch, tmp_path):
    """torch.compile's cache goes under the user cache folder unless TORCHINDUCTOR_CACHE_DIR is set (then left alone);
    one_thread sets PyTorch's thread count to 1 for its block and restores it, also after an error."""
    from assocmem.classifier.class_update import one_thread, use_compile_cache

    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr("sys.platform", "linux")
    assert use_compile_cache() == str(tmp_path / "assocmem" / "inductor")
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "mine"))
    assert use_compile_cache() == str(tmp_path / "mine")
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with pytest.raises(RuntimeError, match="inside"), one_thread():
            assert torch.get_num_threads() == 1
            raise RuntimeError("inside")
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
