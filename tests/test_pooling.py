"""Average pooling as a linear synapse, and the spectral norm of a synapse (docs/reference.md §4)."""

import pytest
import torch
from torch.nn import functional as TF

import assocmem as am

# (pre shape, kernel, stride, padding): non-overlapping with and without a remainder, overlapping, padded, 1-D.
CASES = [
    ((2, 8, 6), 2, None, 0),
    ((2, 7, 9), 2, None, 0),
    ((2, 7, 9), 3, 2, 1),
    ((1, 6, 6), (2, 3), (1, 2), (1, 0)),
    ((3, 11), 2, None, 0),
    ((3, 11), 3, 2, 1),
]


def pooled_network(pre_shape, kernel, stride, padding):
    pool = am.AvgPoolSynapse("a", "b", kernel, stride, padding)
    post_shape = pool.output_shape(pre_shape)
    net = am.Network({"a": am.Layer(pre_shape, am.Identity()), "b": am.Layer(post_shape, am.ReLU())}, [pool])
    return net, pool, post_shape


@pytest.mark.parametrize(("pre_shape", "kernel", "stride", "padding"), CASES)
def test_pooling_is_torch_average_and_its_drive_back_is_the_adjoint(pre_shape, kernel, stride, padding):
    _, pool, post_shape = pooled_network(pre_shape, kernel, stride, padding)
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(3, *pre_shape, dtype=torch.float64, generator=gen)
    b = torch.randn(3, *post_shape, dtype=torch.float64, generator=gen)
    torch_pool = TF.avg_pool1d if len(pre_shape) == 2 else TF.avg_pool2d
    torch.testing.assert_close(pool.drive("b", a), torch_pool(a, kernel, stride, padding))
    # <pool(a), b> = <a, pool^T(b)>, per sample.
    lhs = (pool.drive("b", a) * b).flatten(1).sum(1)
    rhs = (a * pool.drive("a", b)).flatten(1).sum(1)
    torch.testing.assert_close(lhs, rhs, rtol=1e-12, atol=1e-12)
    # Forces against autograd of the energy -g_b . pool(g_a).
    ga, gb = a.clone().requires_grad_(True), b.clone().requires_grad_(True)
    da, db = torch.autograd.grad(pool.energy({"a": ga, "b": gb}).sum(), [ga, gb])
    _, forces = pool.energy_and_forces({"a": a, "b": b})
    torch.testing.assert_close(forces["a"], -da)
    torch.testing.assert_close(forces["b"], -db)


def test_pooling_joins_a_hierarchy_and_relaxes_downhill():
    gen = torch.Generator().manual_seed(1)
    net = am.Network(
        {
            "img": am.Layer((1, 8, 8), am.Identity()),
            "feat": am.Layer((3, 6, 6), am.ReLU()),
            "pool": am.Layer((3, 3, 3), am.Tanh(), tau=0.5),
        },
        [
            am.ConvSynapse("img", "feat", 0.2 * torch.randn(3, 1, 3, 3, dtype=torch.float64, generator=gen)),
            am.AvgPoolSynapse("feat", "pool", 2),
        ],
    )
    state = net.zero_state(2, dtype=torch.float64)
    state["img"] = torch.randn(2, 1, 8, 8, dtype=torch.float64, generator=gen)
    traj = am.relax(net, state, clamp={"img": True}, method="rk4", dt=0.05, t_max=2.0, tol=0)
    assert (traj.energies[1:] <= traj.energies[:-1] + 1e-12).all()
    torch.testing.assert_close(traj.states["img"], state["img"], rtol=0, atol=0)


def test_spectral_norm_is_exact_for_dense_and_converges_for_conv_and_pooling():
    gen = torch.Generator().manual_seed(2)
    w = torch.randn(5, 7, dtype=torch.float64, generator=gen)
    dense = am.DenseSynapse("a", "b", w)
    torch.testing.assert_close(am.spectral_norm(dense), torch.linalg.svdvals(w)[0])
    # A convolution against the largest singular value of its matrix (built column by column from the drive).
    conv = am.ConvSynapse("a", "b", torch.randn(2, 1, 3, 3, dtype=torch.float64, generator=gen), padding=1)
    am.Network({"a": am.Layer((1, 5, 5), am.Identity()), "b": am.Layer((2, 5, 5), am.Identity())}, [conv])
    basis = torch.eye(25, dtype=torch.float64).reshape(25, 1, 5, 5)
    matrix = conv.drive("b", basis).reshape(25, -1).T
    estimate = am.spectral_norm(conv, generator=torch.Generator().manual_seed(0))
    assert estimate.item() == pytest.approx(torch.linalg.svdvals(matrix)[0].item(), rel=1e-5)
    # Non-overlapping 2x2 average pooling: P P^T = I / 4, so ||P|| = 1/2.
    _, pool, _ = pooled_network((2, 6, 6), 2, None, 0)
    assert am.spectral_norm(pool).item() == pytest.approx(0.5, rel=1e-6)
    # Differentiable in the weights (a penalty or constraint for training).
    weight = torch.nn.Parameter(torch.randn(2, 1, 3, 3, dtype=torch.float64, generator=gen))
    trained = am.ConvSynapse("a", "b", weight, padding=1)
    am.Network({"a": am.Layer((1, 5, 5), am.Identity()), "b": am.Layer((2, 5, 5), am.Identity())}, [trained])
    am.spectral_norm(trained).backward()
    assert weight.grad is not None and weight.grad.abs().sum() > 0


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda: am.AvgPoolSynapse("a", "a", 2), ValueError, "different layers"),
        (lambda: am.AvgPoolSynapse("a", "b", 0), ValueError, "kernel_size must be an int >= 1"),
        (lambda: am.AvgPoolSynapse("a", "b", (2, 2, 2)), ValueError, "1 or 2 ints"),
        (lambda: pooled_network((2, 6, 6), 2, None, 2), ValueError, "at most half the kernel"),
        (lambda: pooled_network((2, 6, 6, 6), 2, None, 0), ValueError, r"\(C, L\) or \(C, H, W\)"),
        (
            lambda: am.Network(
                {"a": am.Layer((2, 6, 6), am.Identity()), "b": am.Layer((3, 3, 3), am.Identity())},
                [am.AvgPoolSynapse("a", "b", 2)],
            ),
            ValueError,
            r"produces \(2, 3, 3\)",
        ),
        (lambda: am.spectral_norm("W"), TypeError, "must be an assocmem Synapse"),
        (lambda: am.spectral_norm(am.AvgPoolSynapse("a", "b", 2)), ValueError, "has not joined a network"),
    ],
)
def test_errors_name_the_argument(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_tiling_windows_take_the_fast_path_and_agree_with_the_general_one():
    """Stride = kernel without padding runs strided sums and copies: the same maps as avg_pool and the transposed
    convolution with a 1/k kernel (the general path), with a remainder past the last window, and 1x1 windows."""
    gen = torch.Generator().manual_seed(3)
    for pre_shape, kernel in [((2, 9, 7), (3, 2)), ((2, 4, 4), 1), ((2, 5, 6), (1, 3)), ((3, 10), 4)]:
        _, pool, post_shape = pooled_network(pre_shape, kernel, None, 0)
        assert pool.tiles
        a = torch.randn(2, *pre_shape, dtype=torch.float64, generator=gen)
        b = torch.randn(2, *post_shape, dtype=torch.float64, generator=gen)
        a0, b0 = a.clone(), b.clone()
        torch_pool = TF.avg_pool1d if len(pre_shape) == 2 else TF.avg_pool2d
        torch.testing.assert_close(pool.drive("b", a), torch_pool(a, kernel))
        c = b.shape[1]
        k = pool.kernel_size
        adjoint = (TF.conv_transpose1d if len(pre_shape) == 2 else TF.conv_transpose2d)(
            b,
            torch.full((c, 1, *k), 1.0 / torch.tensor(k).prod().item(), dtype=torch.float64),
            None,
            k,
            0,
            pool.output_padding,
            c,
        )
        torch.testing.assert_close(pool.drive("a", b), adjoint)
        assert torch.equal(a, a0) and torch.equal(b, b0)  # the inputs are never written to
