"""The exact merge of parts' associations (docs/reference.md §8) against one pass over the whole memory."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from assocmem.engines.association import additive_mask, associate
from assocmem.engines.bank import merge


def parts(xi, v, q, beta, cuts, mask=None):
    """Each part's association and log-partition, ``(P, B, d_v)`` and ``(P, B)``; a part with no row of a
    query gets ``lse = -inf`` and ``out = 0`` from the engine, replaced here by NaN (the merge must never read it)."""
    outs, lses = [], []
    for lo, hi in zip([0, *cuts], [*cuts, xi.shape[0]], strict=True):
        m = None if mask is None else additive_mask(mask[:, lo:hi], (q.shape[0], hi - lo), q, "test")
        hidden = torch.zeros(q.shape[0], dtype=torch.bool) if m is None else torch.isneginf(m).all(-1)
        out, lse, _ = associate(q, xi[lo:hi], v[lo:hi], beta, m, need_lse=True)
        assert torch.isneginf(lse[hidden]).all() and (out[hidden] == 0).all()
        outs.append(torch.where(hidden.unsqueeze(-1), float("nan"), out))
        lses.append(lse)
    return torch.stack(outs), torch.stack(lses)


@given(
    k=st.integers(2, 40),
    pieces=st.integers(1, 6),
    beta=st.floats(0.1, 30.0),
    seed=st.integers(0, 2**16),
)
def test_merge_equals_one_pass(k, pieces, beta, seed):
    g = torch.Generator().manual_seed(seed)
    xi, v = torch.randn(k, 5, generator=g).double(), torch.randn(k, 3, generator=g).double()
    q = torch.randn(4, 5, generator=g).double()
    cuts = sorted(torch.randperm(k - 1, generator=g)[: min(pieces, k) - 1].add(1).tolist())
    out, lse = merge(*parts(xi, v, q, beta, cuts))
    want, want_lse, _ = associate(q, xi, v, beta, need_lse=True)
    assert torch.allclose(out, want, rtol=0, atol=1e-12)
    assert torch.allclose(lse, want_lse, rtol=1e-14, atol=1e-12)


def test_a_part_without_rows_takes_no_share_and_gradients_match():
    g = torch.Generator().manual_seed(0)
    xi = torch.randn(9, 4, generator=g).double().requires_grad_(True)
    v = torch.randn(9, 2, generator=g).double()
    q = torch.randn(3, 4, generator=g).double().requires_grad_(True)
    mask = torch.ones(3, 9, dtype=torch.bool)
    mask[0, 3:] = False  # query 0 sees only the first part (rows 0..2)
    outs, lses = parts(xi, v, q, 2.0, [3, 6], mask)
    assert torch.isneginf(lses[1:, 0]).all() and torch.isnan(outs[1:, 0]).all()
    out, lse = merge(outs, lses)
    m = additive_mask(mask, (3, 9), q, "test")
    want, want_lse, _ = associate(q, xi, v, 2.0, m, need_lse=True)
    assert torch.allclose(out, want, atol=1e-13) and torch.allclose(lse, want_lse, atol=1e-13)
    w = torch.randn(3, 2, generator=g).double()
    grads = torch.autograd.grad((out * w).sum() + lse.sum(), (q, xi))
    want_grads = torch.autograd.grad((want * w).sum() + want_lse.sum(), (q, xi))
    for a, b in zip(grads, want_grads, strict=True):
        assert torch.allclose(a, b, atol=1e-12)


def test_merge_refuses_a_query_no_part_takes():
    outs = torch.zeros(2, 3, 4, dtype=torch.float64)
    lses = torch.zeros(2, 3, dtype=torch.float64)
    lses[:, 1] = float("-inf")
    with pytest.raises(ValueError, match="no row of the memory takes part"):
        merge(outs, lses)
