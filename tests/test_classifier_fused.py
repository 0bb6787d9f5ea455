"""The numba loops of the class update (classifier/fused.py) against the general formulation, in float64."""

from __future__ import annotations

import math

import pytest
import torch

from assocmem.classifier import class_update
from assocmem.classifier.class_update import Kernels, backward_weights, fields_reference, scaled_backward
from assocmem.classifier.training import TINY, Step, TrainConfig, _update
from assocmem.lagrangians import Polynomial, RePU

F64 = torch.float64


def inputs(seed: int, rows: int = 37, memories: int = 300, classes: int = 10, spread: float = 5.0):
    gen = torch.Generator().manual_seed(seed)
    hs = torch.randn(rows, memories, generator=gen, dtype=F64)
    hs[:, :7] = -5.0  # memories with no live term for ReP_n
    ds = torch.randn(classes, memories, generator=gen, dtype=F64) * 0.3
    log_g = torch.randn(rows, generator=gen, dtype=F64) * spread
    g = torch.rand(rows, classes, generator=gen, dtype=F64) * 2 - 1
    return hs, ds, log_g, g


def gradient_reference(F, hs, ds, log_g, g):
    x, inv, w, scale = backward_weights(F, hs, ds, log_g)
    dhs, dds = scaled_backward(F, x, inv, w, ds, g)
    return dhs, dds, dhs.sum(0), scale


@pytest.mark.parametrize("F", [RePU(2), RePU(3), RePU(6), Polynomial(3), Polynomial(4)], ids=repr)
@pytest.mark.parametrize("spread", [5.0, 400.0], ids=["scale-without-logs", "scale-from-logs"])
def test_fused_loops_equal_the_general_formulation(F, spread):
    """Fields and the training backward (dhs, dds, their sum over rows, the per-memory scale) equal the plain
    tensors of class_update; log_g spread over 400 * N(0, 1) takes the logarithm path (a_b below 1e-260)."""
    hs, ds, log_g, g = inputs(1, spread=spread)
    kernels = Kernels(F, compiled=True)
    assert kernels.kind == "fused" and kernels.fuses(hs)
    torch.testing.assert_close(kernels.forward(hs, ds), fields_reference(F, hs, ds), rtol=1e-12, atol=1e-12)
    got = kernels.gradient(hs, ds, log_g, g)
    want = gradient_reference(F, hs, ds, log_g, g)
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    assert torch.isneginf(got[3][:7]).all() == isinstance(F, RePU)


def test_a_memory_out_of_the_fast_range_takes_the_logarithms():
    """Q_mu above 1e200 (huge overlaps at n = 6): the block is computed from the logarithms, still equal."""
    F = RePU(6)
    hs, ds, log_g, g = inputs(2, rows=9, memories=70)
    hs[:, 3] = 1e45
    got = Kernels(F, compiled=True).gradient(hs, ds, log_g, g)
    for a, b in zip(got, gradient_reference(F, hs, ds, log_g, g), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_results_do_not_depend_on_the_thread_count():
    hs, ds, log_g, g = (t.float() for t in inputs(3, rows=200, memories=700))
    kernels = Kernels(RePU(3), compiled=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        one = (kernels.forward(hs, ds), *kernels.gradient(hs, ds, log_g, g))
        torch.set_num_threads(3)
        three = (kernels.forward(hs, ds), *kernels.gradient(hs, ds, log_g, g))
    finally:
        torch.set_num_threads(threads)
    for a, b in zip(one, three, strict=True):
        assert torch.equal(a, b)


def test_unsupported_degrees_keep_torch_compile_kernels():
    from assocmem.classifier import fused

    assert fused.MAX_POWER == class_update.FUSED_MAX_DEGREE
    assert not class_update.fusable(RePU(7)) and not class_update.fusable(RePU(2.5))
    assert not class_update.fusable(RePU(1)) and class_update.fusable(Polynomial(2))
    assert Kernels(RePU(3), compiled=False).kind == "eager"


def test_fused_update_equals_the_tensor_update():
    """Step's momentum update in one numba pass equals training._update with the same scales (float64)."""
    config = TrainConfig(memories=40, pixels=12, classes=3, batch_size=30, dtype="float64", momentum=0.9)
    model = config.model(torch.Generator().manual_seed(0), compile=True)
    step = Step(model, config)
    assert step.fused
    gen = torch.Generator().manual_seed(1)
    xi0 = model.memories.detach().clone()
    step.velocity = torch.randn(40, 15, generator=gen, dtype=F64)
    step.log_scale = torch.randn(40, generator=gen, dtype=F64)
    step.log_scale[:3] = -math.inf  # never moved
    grad = class_update_gradient(gen)
    grad.pixels[5:8] = 0.0
    grad.classes[5:8] = 0.0  # not moving now
    old_v, old_log = step.velocity.clone(), step.log_scale.clone()
    step._fused_update(grad, 0.01)
    moved = (grad.pixels.abs().amax(1) > 0) | (grad.classes.abs().amax(1) > 0)
    gs = torch.where(moved, grad.scale, -math.inf)
    new = torch.maximum(old_log + math.log(0.9), gs)
    live = new > -math.inf
    keep = torch.where(live & (old_log > -math.inf), (old_log + math.log(0.9) - new).exp(), 0.0)
    add = torch.where(live & moved, (gs - new).exp(), 0.0)
    v, xi, finite = _update(
        xi0, old_v, grad.pixels, grad.classes, keep[:, None], add[:, None], torch.tensor(0.01, dtype=F64)
    )
    torch.testing.assert_close(step.velocity, v, rtol=1e-13, atol=1e-15)
    torch.testing.assert_close(model.memories.detach(), xi, rtol=1e-13, atol=1e-15)
    torch.testing.assert_close(step.log_scale, torch.where(live, new, old_log))
    assert bool(step.finite) and bool(finite) and TINY > 0


def class_update_gradient(gen: torch.Generator):
    from assocmem.classifier.training import Gradient

    return Gradient(
        0.0,
        torch.zeros(1),
        torch.randn(40, 12, generator=gen, dtype=F64),
        torch.randn(40, 3, generator=gen, dtype=F64),
        torch.randn(40, generator=gen, dtype=F64),
    )
