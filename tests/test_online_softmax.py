"""The association streamed over chunks (assocmem.engines.online_softmax) against the unchunked float64 formula,
shared patterns read in place, and the layers' forward without copies of the stored patterns."""

from __future__ import annotations

import math

import pytest
import torch
from torch.utils import _pytree as pytree
from torch.utils._python_dispatch import TorchDispatchMode

import assocmem as am
from assocmem.engines.association import associate
from assocmem.engines.online_softmax import (
    CACHED_BYTES,
    CHUNK_BYTES,
    MIN_CHUNK,
    PATTERN_CHUNK_BYTES,
    chunk_rows,
    stream,
)
from assocmem.nn import Hopfield, HopfieldLayer

F64 = torch.float64


@pytest.fixture(params=["compiled", "pytorch"])
def path(request, monkeypatch):
    """Both in-place paths of the chunks: the compiled kernels (numba, online_softmax.use_fused) and PyTorch's
    operations."""
    from assocmem.engines import online_softmax

    monkeypatch.setattr(online_softmax, "use_fused", request.param == "compiled")
    return request.param


def reference(q, k, v, beta, mask=None):
    """``softmax(beta q k^T + mask) v`` and its log-partition, in one piece, in float64."""
    s = beta * q.double() @ k.double().transpose(-1, -2)
    if mask is not None:
        s = s + mask.double()
    return torch.softmax(s, -1) @ v.double(), torch.logsumexp(s, -1)


@pytest.mark.parametrize("beta", [1.0, 20.0, 200.0, 3000.0])
@pytest.mark.parametrize("chunk", [1, 3, 7, 29, 30, None])
@pytest.mark.parametrize("masked", [False, True])
def test_stream_equals_the_unchunked_computation_in_float64(beta, chunk, masked, path):
    g = torch.Generator().manual_seed(int(beta) + (chunk or 0))
    k, q, v = (torch.randn(*s, generator=g, dtype=F64) for s in ((30, 6), (5, 6), (30, 4)))
    mask = None
    if masked:
        mask = torch.zeros(5, 30, dtype=F64).masked_fill_(torch.rand(5, 30, generator=g) < 0.4, -math.inf)
        mask[:, 0] = 0.0
    out, lse, _ = stream(q, k, v, beta, mask, chunk, need_lse=True, need_weights=False)
    want, want_lse = reference(q, k, v, beta, mask)
    torch.testing.assert_close(out, want, rtol=1e-13, atol=1e-13)
    torch.testing.assert_close(lse, want_lse, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("order", ["max first", "max last", "max in the middle"])
@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_rows_whose_chunks_underflow_entirely(order, dtype, path):
    """Each query meets, in chunks of 4, its maximum, a chunk whose weights all lie in the dropped band
    (2^-80 .. 2^-300 of the maximum, so below the threshold in float32 and float64 alike, or partly), and a
    chunk far below anything representable: the answer is the unchunked one to rounding, whatever the order."""
    d = 3
    near = torch.tensor([[1.0, 0.0, 0.0], [0.9, 0.1, 0.0], [0.8, 0.0, 0.2], [0.7, 0.3, 0.0]])
    band = torch.tensor(
        [[0.3, 0.0, 0.0], [0.2, 0.0, 0.0], [0.1, 0.0, 0.0], [0.0, 0.0, 0.0]]
    )  # 70-300 nats below
    far = torch.full((4, d), -20.0)
    chunks = {
        "max first": [near, band, far],
        "max last": [far, band, near],
        "max in the middle": [band, near, far],
    }
    k = torch.cat(chunks[order]).to(dtype)
    v = torch.randn(12, 2, generator=torch.Generator().manual_seed(1), dtype=dtype)
    q = torch.tensor([[1.0, 0.0, 0.0], [1.0, 0.5, 0.0]], dtype=dtype)
    beta = (
        100.0 if dtype == torch.float32 else 300.0
    )  # scores 100-300 nats apart: exp underflows float32 below 87
    want, want_lse = reference(q, k, v, beta)
    for chunk in (4, 5, None):
        out, lse, _ = stream(q, k, v, beta, None, chunk, need_lse=True, need_weights=False)
        tol = 2e-6 if dtype == torch.float32 else 1e-13
        torch.testing.assert_close(out.double(), want, rtol=tol, atol=tol)
        torch.testing.assert_close(lse.double(), want_lse, rtol=tol, atol=tol)


def test_hidden_patterns_weigh_exactly_zero_in_every_chunk(path):
    """A hidden pattern with an enormous value does not leak into the answer (its weight is 0, not 2^-80)."""
    g = torch.Generator().manual_seed(2)
    k, q = torch.randn(40, 5, generator=g), torch.randn(3, 5, generator=g)
    v = torch.randn(40, 2, generator=g)
    v[7] = 1e30
    mask = torch.ones(3, 40, dtype=torch.bool)
    mask[:, 7] = False
    keep = torch.arange(40) != 7
    want = am.retrieve(k[keep], q, 2.0, values=v[keep])
    for chunk in (3, 8, None):
        torch.testing.assert_close(am.retrieve(k, q, 2.0, values=v, mask=mask, chunk_size=chunk), want)


def test_no_subnormal_weight_reaches_the_products(path):
    """At large beta most weights underflow; those below 2^-80 of the maximum are exactly 0, never subnormal."""
    g = torch.Generator().manual_seed(3)
    k, q = torch.randn(500, 16, generator=g), torch.randn(4, 16, generator=g)
    seen = []
    real = torch.matmul

    class Spy(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if func in (torch.ops.aten.mm.default, torch.ops.aten.mm.out, torch.ops.aten.bmm.default):
                a = args[0]
                if a.shape[-1] == 500 or a.shape[-1] == 50:  # the weights' product with the values
                    tiny = (a != 0) & (a.abs() < torch.finfo(a.dtype).tiny)
                    seen.append(bool(tiny.any()))
            return func(*args, **(kwargs or {}))

    with torch.no_grad(), Spy():
        for chunk in (50, None):
            am.retrieve(k, q, 400.0, chunk_size=chunk)
    assert seen and not any(seen)
    assert real is torch.matmul


def test_autograd_and_inplace_paths_agree(path):
    g = torch.Generator().manual_seed(4)
    k, q, v = (torch.randn(*s, generator=g, dtype=F64) for s in ((50, 4), (6, 4), (50, 3)))
    mask = torch.zeros(6, 50, dtype=F64).masked_fill_(torch.rand(6, 50, generator=g) < 0.3, -math.inf)
    mask[:, 5] = 0.0
    with torch.no_grad():
        fast = stream(q, k, v, 7.0, mask, 9, need_lse=True, need_weights=False)
    kk = k.clone().requires_grad_()
    slow = stream(q, kk, v, 7.0, mask, 9, need_lse=True, need_weights=False)
    torch.testing.assert_close(slow[0].detach(), fast[0], rtol=1e-14, atol=1e-14)
    torch.testing.assert_close(slow[1].detach(), fast[1], rtol=1e-14, atol=1e-14)
    torch.autograd.gradcheck(
        lambda kk: stream(q, kk, v, 7.0, mask, 9, need_lse=True, need_weights=False)[:2], kk
    )


@pytest.mark.parametrize("chunk", [5, None])
@pytest.mark.parametrize("layout", ["shared by the batch", "shared by the heads", "shared by both"])
def test_patterns_shared_along_a_dimension_equal_the_expanded_computation(layout, chunk, path):
    g = torch.Generator().manual_seed(5)
    b, h, length, k, d = 3, 2, 4, 23, 5
    shape = {"shared by the batch": (1, h), "shared by the heads": (b, 1), "shared by both": (1, 1)}[layout]
    p = torch.randn(*shape, k, d, generator=g, dtype=F64)
    v = torch.randn(*shape, k, 2, generator=g, dtype=F64)
    q = torch.randn(b, h, length, d, generator=g, dtype=F64)
    beta = torch.tensor([0.7, 3.0], dtype=F64).view(1, h, 1, 1)
    mask = torch.zeros(b, h, length, k, dtype=F64).masked_fill_(
        torch.rand(b, h, length, k, generator=g) < 0.3, -1e9
    )
    full = (p.expand(b, h, k, d).contiguous(), v.expand(b, h, k, 2).contiguous())
    for need_weights in (False, True):
        c = None if need_weights else chunk
        got = associate(q, p, v, beta, mask, chunk_size=c, need_lse=True, need_weights=need_weights)
        want = associate(q, *full, beta, mask, chunk_size=c, need_lse=True, need_weights=need_weights)
        for a, w in zip(got, want, strict=True):
            if w is not None:
                torch.testing.assert_close(a, w)
    ref, ref_lse = reference(q * beta, full[0], full[1], 1.0, mask)
    out, lse, _ = associate(q * beta, p, v, 1.0, mask, chunk_size=chunk, need_lse=True)
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(lse, ref_lse)


def test_chunk_sizes_stay_within_their_bounds():
    cases = [
        (1, 10**7, 64),
        (64, 10**6, 64),
        (64, 65536, 256),
        (4096, 10**5, 64),
        (1, 100, 8),
        (1, 10**5, 64),
    ]
    for rows, k, width in cases:
        c = chunk_rows(rows, k, width, 4)
        assert 1 <= c <= k
        n = -(-k // c)
        assert n * c - k < n  # the chunks are of (nearly) equal size
        if c < k and k * width * 4 > CACHED_BYTES:
            assert c * width * 4 <= PATTERN_CHUNK_BYTES + width * 4 * n
            assert rows * c * 4 <= max(CHUNK_BYTES, rows * MIN_CHUNK * 4) + rows * 4 * n


class Allocations(TorchDispatchMode):
    """The sizes (elements) of the new tensors an operation makes (views and ``out=`` results excluded)."""

    def __init__(self) -> None:
        super().__init__()
        self.sizes: list[int] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        given = {
            t.untyped_storage().data_ptr()
            for t in pytree.tree_leaves((args, kwargs))
            if isinstance(t, torch.Tensor)
        }
        for t in pytree.tree_leaves(out):
            if isinstance(t, torch.Tensor) and t.untyped_storage().data_ptr() not in given:
                self.sizes.append(t.numel())
        return out


ROLES = ("stored_pattern", "state_pattern", "pattern_projection")
STATIC = {f"normalize_{r}{a}": False for r in ROLES for a in ("", "_affine")}
STATIC |= {f"{r}_as_static": True for r in ROLES} | {"disable_out_projection": True}


@pytest.mark.parametrize("heads", [1, 2])
@pytest.mark.parametrize("steps", [0, 3])
def test_a_static_layer_reads_a_shared_memory_in_place(heads, steps):
    """A memory given once for the batch (an expanded tensor) and read by every head: the forward makes no
    tensor as large as the memory (no copy per item, head or step) and equals retrieve on the memory."""
    g = torch.Generator().manual_seed(6)
    b, k, d = 3, 4096, 16
    mem, q = torch.randn(k, d, generator=g), torch.randn(b, 1, d, generator=g)
    layer = Hopfield(scaling=2.0, num_heads=heads, update_steps_max=steps, update_steps_eps=1e-30, **STATIC)
    inputs = (mem.expand(b, k, d), q, mem.expand(b, k, d))
    with torch.no_grad(), Allocations() as seen:
        out = layer(inputs)
    assert max(seen.sizes) < k * d
    want = am.retrieve(mem, q[:, 0], 2.0, steps=steps + 1)
    for h in range(heads):
        torch.testing.assert_close(out[:, 0, h * d : (h + 1) * d], want)


def test_hopfield_layer_projects_its_stored_patterns_once_per_forward():
    """HopfieldLayer's lookup weights are normalised and projected once, not once per batch item: the forward
    makes four tensors of the memory's size (two normalisations, two projections) and none larger."""
    g = torch.Generator().manual_seed(7)
    b, k, d = 5, 4096, 16
    layer = HopfieldLayer(d, quantity=k)
    x = torch.randn(b, 2, d, generator=g)
    with torch.no_grad(), Allocations() as seen:
        out = layer(x)
    assert max(seen.sizes) <= k * d
    assert sum(s >= k * d for s in seen.sizes) <= 4
    core, h = layer.hopfield.association_core, layer.hopfield
    wq, wk, wv = core.in_proj_weight.split(d)
    bq, bk, bv = core.in_proj_bias.split(d)
    y = layer.lookup_weights[0]
    with torch.no_grad():
        keys = torch.nn.functional.linear(h.norm_stored_pattern(y), wk, bk)
        vals = torch.nn.functional.linear(h.norm_pattern_projection(y), wv, bv)
        queries = torch.nn.functional.linear(h.norm_state_pattern(x), wq, bq)
        want = core.out_proj(torch.softmax(h.scaling * queries @ keys.T, -1) @ vals)
    torch.testing.assert_close(out, want)


@pytest.mark.parametrize("batch", [1, 64, 600])
def test_retrieve_makes_nothing_larger_than_a_chunk_of_scores(batch):
    """Whatever K, the largest tensor a retrieval makes is a chunk of scores (bounded), never K-sized."""
    g = torch.Generator().manual_seed(8)
    k, d = 100_000, 4
    mem, q = torch.randn(k, d, generator=g), torch.randn(batch, d, generator=g)
    bound = max(CHUNK_BYTES // 4, batch * MIN_CHUNK)
    with torch.no_grad(), Allocations() as seen:
        out = am.retrieve(mem, q, 3.0)
    assert max(seen.sizes) <= bound < k * max(batch, d)  # below the score matrix and the memory
    want = reference(q[:8], mem, mem, 3.0)[0]  # float32 sums of 1e5 terms round at about 1e-4
    torch.testing.assert_close(out[:8].double(), want, rtol=0, atol=5e-4)


def test_a_result_whose_sum_overflows_is_still_finite():
    """The value check sums the result (NaN and Inf propagate); a sum that overflows from finite values is
    settled by the exact check, not reported as an error."""
    g = torch.Generator().manual_seed(9)
    k, q = torch.randn(50, 4, generator=g), torch.randn(6, 4, generator=g)
    big = torch.full((50, 3), 3e38)
    out = am.retrieve(k, q, 1.0, values=big)
    assert torch.isfinite(out).all() and not torch.isfinite(out.sum())
    with pytest.raises(ValueError, match="values"):
        am.retrieve(k, q, 1.0, values=big.index_fill(0, torch.tensor([3]), math.inf))


@pytest.mark.parametrize(("busy", "chunk"), [(False, 6), (True, 6), (False, 30)])
def test_parts_on_threads_of_their_own_equal_one_thread(busy, chunk, path):
    """With several PyTorch threads the memory is split into contiguous parts, one thread each, merged once
    (exactly), or runs on one thread when too small to split (chunk=30: four chunks); the thread count is restored;
    a call made while another one is split runs as it is."""
    from assocmem.engines import online_softmax

    g = torch.Generator().manual_seed(10)
    k, q, v = (torch.randn(*s, generator=g, dtype=F64) for s in ((101, 5), (4, 2, 5), (101, 3)))
    mask = torch.zeros(4, 2, 101, dtype=F64).masked_fill_(torch.rand(4, 2, 101, generator=g) < 0.3, -math.inf)
    mask[..., 50] = 0.0
    want = reference(q, k, v, 30.0, mask)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        if busy:
            online_softmax._SPLIT.acquire()
        with torch.no_grad():
            got = stream(q, k, v, 30.0, mask, chunk, need_lse=True, need_weights=False)
        assert torch.get_num_threads() == 2
    finally:
        if busy:
            online_softmax._SPLIT.release()
        torch.set_num_threads(before)
    torch.testing.assert_close(got[0], want[0], rtol=1e-13, atol=1e-13)
    torch.testing.assert_close(got[1], want[1], rtol=1e-13, atol=1e-13)


def _hidden_chunks_mask(rows, k, chunk):
    """Query 0 hidden from every pattern; query 1 from the first chunk, query 2 from the last, query 3 from every
    chunk but the middle one, query 4 from a whole part when the memory is split in two; the rest from none."""
    mask = torch.zeros(rows, k, dtype=F64)
    mask[0] = -math.inf
    mask[1, :chunk] = -math.inf
    mask[2, k - chunk :] = -math.inf
    mask[3] = -math.inf
    mask[3, chunk : 2 * chunk] = 0.0
    mask[4, : k // 2] = -math.inf
    return mask


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("chunk", [6, 60, None])
@pytest.mark.parametrize("grad", [False, True])
def test_hidden_chunks_and_a_query_hidden_from_every_pattern(chunk, grad, threads, path):
    """A chunk (or a thread's part) that a mask hides entirely adds nothing: the answer is the unchunked one. A
    query hidden from every pattern is an empty part: ``out = 0``, ``lse = -inf`` and weights 0, never NaN, and
    its gradients are 0 (the convention of the merge, docs/reference.md §8, and of PyTorch's fused attention);
    the other queries' gradients equal the unchunked computation's, in float64."""
    g = torch.Generator().manual_seed(11)
    k, d, rows = 60, 4, 6
    xi, v = torch.randn(k, d, generator=g, dtype=F64), torch.randn(k, 3, generator=g, dtype=F64)
    q = torch.randn(rows, d, generator=g, dtype=F64)
    mask = _hidden_chunks_mask(rows, k, 6)
    seen = torch.arange(rows) != 0
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(threads)
        for need_weights in (False, True) if chunk is None else (False,):
            for need_lse in (False, True):
                qq, kk = q.clone().requires_grad_(grad), xi.clone().requires_grad_(grad)
                with torch.set_grad_enabled(grad):
                    out, lse, w = stream(
                        qq, kk, v, 3.0, mask, chunk, need_lse=need_lse, need_weights=need_weights
                    )
                assert not out.isnan().any() and (out[0] == 0).all()
                if need_lse:
                    assert torch.isneginf(lse[0]) and torch.isfinite(lse[seen]).all()
                if need_weights:
                    assert (w[0] == 0).all()
                want, want_lse = reference(q[seen], xi, v, 3.0, mask[seen])
                torch.testing.assert_close(out[seen].detach(), want, rtol=1e-13, atol=1e-13)
                if need_lse:
                    torch.testing.assert_close(lse[seen].detach(), want_lse, rtol=1e-13, atol=1e-13)
                if grad:
                    c = torch.randn(rows, 3, generator=g, dtype=F64)
                    loss = (out * c).sum() + (lse[seen].sum() if need_lse else 0.0)
                    gq, gk = torch.autograd.grad(loss, (qq, kk))
                    assert (gq[0] == 0).all() and torch.isfinite(gk).all()
                    q2, k2 = q[seen].clone().requires_grad_(), xi.clone().requires_grad_()
                    o2, l2 = reference(q2, k2, v, 3.0, mask[seen])
                    loss2 = (o2 * c[seen]).sum() + (l2.sum() if need_lse else 0.0)
                    wq, wk = torch.autograd.grad(loss2, (q2, k2))
                    torch.testing.assert_close(gq[seen], wq, rtol=1e-12, atol=1e-12)
                    torch.testing.assert_close(gk, wk, rtol=1e-12, atol=1e-12)
    finally:
        torch.set_num_threads(before)


def test_retrieve_refuses_a_query_hidden_from_every_pattern_and_returns_zero_unchecked():
    """retrieve documents a fully hidden row as an error; with the value checks off it returns the engine's
    defined value for an empty memory (0), not NaN."""
    g = torch.Generator().manual_seed(12)
    xi, q = torch.randn(40, 4, generator=g, dtype=F64), torch.randn(3, 4, generator=g, dtype=F64)
    mask = torch.ones(3, 40, dtype=torch.bool)
    mask[1] = False
    for chunk in (7, None):
        with pytest.raises(ValueError, match=r"mask hides every pattern from the row \(1,\)"):
            am.retrieve(xi, q, 2.0, mask=mask, chunk_size=chunk)
        with am.checks.value_checks(False):
            out = am.retrieve(xi, q, 2.0, mask=mask, chunk_size=chunk)
        assert (out[1] == 0).all()
        torch.testing.assert_close(out[[0, 2]], am.retrieve(xi, q[[0, 2]], 2.0, chunk_size=chunk))
