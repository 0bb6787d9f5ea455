"""The classifier's matrix products as row blocks that threads claim, so a descheduled thread stalls no other.

A training step needs two products of the pixels with the memories (docs/classifier.md#speed): the overlaps
``hs = (x0 sum_a xi_a + v xi_pixels^T) / T`` ``(B, K)`` and the pixel gradient ``dhs^T v / T`` ``(K, P)``. PyTorch
splits a product among its OpenMP threads in fixed parts and waits at a barrier for the last one, spinning: on a
loaded machine a thread the operating system has descheduled holds the others there, and the spinning takes CPU
time from the process's own share (measured: an epoch's products on two threads took 1.4-1.7x as long as on one).

:func:`addmm_rows` computes ``out = beta input + alpha mat1 @ mat2`` in :data:`UNITS` blocks of rows of ``mat1``
and ``out``, fixed by the shapes alone: the calling thread and ``threads - 1`` helpers
(:func:`assocmem.pool.helper_pool`) claim blocks from a shared counter and compute each with
PyTorch on one thread; a thread that is descheduled delays only the block it holds, which the others do not wait
for until the counter is spent. The caller then sleeps (without spinning) until the blocks still held are done,
so no block is computed twice and no CPU time is spent waiting.

**Results.** Each block is one ``addmm`` of whole rows, the reduction over ``mat1``'s columns not split: with
Intel MKL the blocks equal the unsplit product bit for bit (every output element is the same dot product), so the
result does not depend on the thread count (tests/test_classifier_products.py checks both, and the value against
the plain formula in float64). One thread, a small product (fewer than :data:`MIN_FLOPS` multiply-adds) or
another device keep a single ``addmm`` (on one thread for small products).
"""

from __future__ import annotations

import torch
from torch import Tensor

from assocmem.classifier.class_update import one_thread
from assocmem.pool import run_claimed

__all__ = ["addmm_rows"]

#: Blocks per product: few enough that each stays large (a block re-reads all of ``mat2``), enough to balance.
UNITS = 4
#: Products with fewer multiply-adds run as one ``addmm`` on one thread (a block would cost more to hand out).
MIN_FLOPS = 1 << 24


def addmm_rows(
    input: Tensor, mat1: Tensor, mat2: Tensor, *, beta: float, alpha: float, out: Tensor, threads: int
) -> Tensor:
    """``out = beta input + alpha mat1 @ mat2`` (as ``torch.addmm``) on ``threads`` threads in claimed row blocks.

    ``mat1 (M, N)``, ``mat2 (N, P)``, ``out (M, P)`` with contiguous rows; ``input`` of ``(P,)`` (added to every
    row) or ``(M, P)``. Returns ``out``. Not differentiable (the operands are detached).
    """
    input, mat1, mat2 = input.detach(), mat1.detach(), mat2.detach()  # grad mode is per thread: none recorded
    rows = mat1.shape[0]
    if out.device.type != "cpu" or rows * mat1.shape[1] * mat2.shape[1] < MIN_FLOPS:
        with one_thread():
            return torch.addmm(input, mat1, mat2, beta=beta, alpha=alpha, out=out)
    if threads <= 1:
        return torch.addmm(input, mat1, mat2, beta=beta, alpha=alpha, out=out)
    step = -(-rows // UNITS)
    units = -(-rows // step)

    def compute(unit: int) -> None:
        i, j = unit * step, min(rows, (unit + 1) * step)
        part = input if input.dim() == 1 else input[i:j]
        torch.addmm(part, mat1[i:j], mat2, beta=beta, alpha=alpha, out=out[i:j])

    with one_thread():  # PyTorch on one thread in every block, whichever thread runs it
        run_claimed(units, compute, compute, threads)
    return out
