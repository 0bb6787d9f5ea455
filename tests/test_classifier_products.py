"""The classifier's matrix products in claimed row blocks (classifier/products.py) against the plain formula."""

from __future__ import annotations

import threading
import time

import pytest
import torch

from assocmem.classifier import products
from assocmem.classifier.products import addmm_rows
from assocmem.classifier.training import Step, TrainConfig, targets
from assocmem.pool import Claims


def operands(dtype: torch.dtype, rows: int = 203, inner: int = 311, cols: int = 290, seed: int = 0):
    """``input (cols,)``, ``full (rows, cols)``, ``mat1 (rows, inner)`` as a transposed view, ``mat2 (inner, cols)``
    (``rows * inner * cols`` above MIN_FLOPS, so the blocks are used; ``rows`` not a multiple of UNITS)."""
    gen = torch.Generator().manual_seed(seed)
    bias = torch.randn(cols, generator=gen, dtype=dtype)
    full = torch.randn(rows, cols, generator=gen, dtype=dtype)
    mat1 = torch.randn(inner, rows, generator=gen, dtype=dtype).T  # strides (1, rows), as dhs.T in training
    mat2 = torch.randn(inner, cols, generator=gen, dtype=dtype)
    assert rows * inner * cols >= products.MIN_FLOPS and rows % products.UNITS
    return bias, full, mat1, mat2


def plain(
    input: torch.Tensor, mat1: torch.Tensor, mat2: torch.Tensor, beta: float, alpha: float
) -> torch.Tensor:
    """``beta input + alpha mat1 @ mat2`` summed term by term in float64 (no BLAS)."""
    terms = (mat1.double()[:, :, None] * mat2.double()[None, :, :]).sum(1)
    return beta * input.double() + alpha * terms


def run(threads: int, input, mat1, mat2, beta: float, alpha: float) -> torch.Tensor:
    out = torch.empty(mat1.shape[0], mat2.shape[1], dtype=mat1.dtype)
    return addmm_rows(input, mat1, mat2, beta=beta, alpha=alpha, out=out, threads=threads)


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("broadcast", [True, False])
def test_the_blocks_compute_the_plain_formula_in_float64(threads, broadcast):
    bias, full, mat1, mat2 = operands(torch.float64)
    input = bias if broadcast else full
    got = run(threads, input, mat1, mat2, -0.7, 1 / 300)
    torch.testing.assert_close(got, plain(input, mat1, mat2, -0.7, 1 / 300), rtol=1e-12, atol=1e-12)


def test_beta_zero_ignores_what_the_output_held():
    """The training's pixel gradient writes into a reused buffer with beta = 0: NaN there must not leak in."""
    _, _, mat1, mat2 = operands(torch.float64)
    out = torch.full((mat1.shape[0], mat2.shape[1]), float("nan"), dtype=torch.float64)
    got = addmm_rows(out, mat1, mat2, beta=0.0, alpha=0.5, out=out, threads=2)
    torch.testing.assert_close(got, plain(torch.zeros(()), mat1, mat2, 0.0, 0.5), rtol=1e-12, atol=1e-12)


def test_results_do_not_depend_on_the_thread_count_and_equal_one_addmm():
    bias, full, mat1, mat2 = operands(torch.float32, rows=999, inner=784, cols=300)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = torch.addmm(bias, mat1, mat2, beta=-0.5, alpha=0.25)
    finally:
        torch.set_num_threads(threads)
    for count in (1, 2, 3):
        assert torch.equal(run(count, bias, mat1, mat2, -0.5, 0.25), one)
        assert torch.equal(
            run(count, full, mat1, mat2, 0.0, 0.25), torch.addmm(full, mat1, mat2, beta=0.0, alpha=0.25)
        )


def test_a_slow_helper_delays_only_its_block_and_no_block_is_computed_twice():
    """A helper stuck in its first block: the caller computes every other block, then waits for that one."""
    claims, seen, lock = Claims(6), [], threading.Lock()
    stuck = threading.Event()

    def compute(unit: int) -> None:
        with lock:
            seen.append((threading.current_thread().name, unit))
        if threading.current_thread().name == "helper":
            stuck.set()
            time.sleep(0.3)

    helper = threading.Thread(target=claims.work, args=(compute,), name="helper")
    helper.start()
    stuck.wait()
    claims.work(compute)
    claims.wait()
    helper.join()
    assert sorted(unit for _, unit in seen) == list(range(6))
    assert [unit for name, unit in seen if name == "helper"] == [0]


def test_an_error_in_a_block_reaches_the_caller(monkeypatch):
    bias, _, mat1, mat2 = operands(torch.float64)

    def broken(input, a, *args, **kwargs):
        if a.data_ptr() != mat1.data_ptr():  # every block but the first, whichever thread computes it
            raise RuntimeError("a block failed")
        return real(input, a, *args, **kwargs)

    real = torch.addmm
    monkeypatch.setattr(products.torch, "addmm", broken)
    with pytest.raises(RuntimeError, match="a block failed"):
        run(2, bias, mat1, mat2, 1.0, 1.0)


def test_a_training_step_is_the_same_on_one_and_on_two_threads():
    """The step's products in claimed blocks (and the fused loops): the same bits whatever the thread count."""
    config = TrainConfig(memories=256, batch_size=100)
    gen = torch.Generator().manual_seed(0)
    images = torch.rand(100, 784, generator=gen) * 2 - 1
    t = targets(torch.arange(100) % 10, 10)
    threads, states = torch.get_num_threads(), []
    try:
        for count in (1, 2):
            torch.set_num_threads(count)
            model = config.model(torch.Generator().manual_seed(0), compile=True)
            step = Step(model, config)
            for _ in range(2):
                step(images, t, config.lr)
            states.append((model.memories.detach().clone(), step.velocity, step.grad_pixels))
    finally:
        torch.set_num_threads(threads)
    for a, b in zip(*states, strict=True):
        assert torch.equal(a, b)
