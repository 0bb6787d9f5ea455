"""The compiled one-pass association (assocmem.engines.fused_softmax) against the unchunked float64 formula: its
exponential, its blocks and running maximum (rows whose blocks underflow entirely), its parts on threads, its
errors on NaN and Inf, and that the engine takes it where it should (and not with gradients)."""

from __future__ import annotations

import math

import pytest
import torch

import assocmem as am
from assocmem.engines import fused_softmax, online_softmax
from assocmem.engines.online_softmax import stream

F64 = torch.float64


def reference(q, k, v, beta):
    """``softmax(beta q k^T) v`` and its log-partition, in one piece, in float64."""
    s = beta * q.double() @ k.double().T
    return torch.softmax(s, -1) @ v.double(), torch.logsumexp(s, -1)


@pytest.fixture
def calls(monkeypatch):
    """Counts the compiled passes (one thread, so that the small-call path is the one taken)."""
    seen = []
    real = fused_softmax.associate

    def counted(*args):
        seen.append(args[3:5])
        return real(*args)

    monkeypatch.setattr(fused_softmax, "associate", counted)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield seen
    torch.set_num_threads(threads)


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_the_exponential_is_exact_to_rounding(dtype):
    """Scores ``t`` in [-b, 0] read out through the values' identity matrix: the weights are ``2^t`` within
    1.5e-7 (float32: the polynomial's 2.6e-9 and float32's roundings) or 2e-14 (float64), and exactly 0 below."""
    bits = online_softmax.underflow_bits(dtype)
    t = torch.cat([torch.zeros(1, dtype=F64), -torch.rand(3000, dtype=F64, generator=torch.Generator().manual_seed(0))
                   * bits, torch.tensor([-bits - 0.5, -bits - 40.0, -math.inf], dtype=F64)])  # fmt: skip
    pat = t.to(dtype)[:, None]
    val = torch.eye(t.shape[0], dtype=dtype)
    acc, stats = fused_softmax.associate(torch.ones(1, 1, dtype=dtype), pat, val, 0, t.shape[0], bits)
    den, top = stats[:, :1], stats[:, 1:]
    want = torch.exp2(pat.double()[:, 0])
    want[-3:] = 0.0
    tol = 1.5e-7 if dtype == torch.float32 else 2e-14
    torch.testing.assert_close(acc[0].double(), want, rtol=tol, atol=0.0)
    assert float(top) == 0.0 and (acc[0, -3:] == 0).all()
    torch.testing.assert_close(den[0, 0].double(), want.sum(), rtol=tol, atol=0.0)


@pytest.mark.parametrize("k", [1, 7, 127, 128, 129, 300])
@pytest.mark.parametrize("beta", [1.0, 20.0, 200.0, 3000.0])
def test_one_pass_equals_the_unchunked_computation_in_float64(calls, k, beta):
    """Memories across block boundaries (128 patterns of width 64 in a float64 block), values of another width."""
    g = torch.Generator().manual_seed(k + int(beta))
    pat, q, v = (torch.randn(*s, generator=g, dtype=F64) for s in ((k, 64), (1, 64), (k, 5)))
    with torch.no_grad():
        out, lse, _ = stream(q, pat, v, beta, None, None, need_lse=True, need_weights=False)
    assert calls == [(0, k)]
    want, want_lse = reference(q, pat, v, beta)
    torch.testing.assert_close(out, want, rtol=1e-13, atol=1e-13)
    torch.testing.assert_close(lse, want_lse, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("order", ["max first", "max last", "max in the middle"])
@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_blocks_that_underflow_entirely(calls, order, dtype):
    """Blocks of patterns (256 in float32 at width 64, 128 in float64) holding the maximum, weights in the dropped
    band (70-300 nats below) and weights far below anything representable, in every order: the answer is the
    unchunked one to rounding (the running maximum rescales, or drops, what came before)."""
    block = fused_softmax.BLOCK_BYTES // (64 * torch.finfo(dtype).bits // 8)
    first = torch.tensor([1.0, 0.9, 0.8, 0.7]).repeat(block // 4)
    band = torch.tensor([0.3, 0.2, 0.1, 0.0]).repeat(block // 4)
    far = torch.full((block,), -20.0)
    groups = {
        "max first": [first, band, far],
        "max last": [far, band, first],
        "max in the middle": [band, first, far],
    }
    pat = torch.zeros(3 * block, 64, dtype=dtype)
    pat[:, 0] = torch.cat(groups[order]).to(dtype)
    pat[:, 1] = torch.linspace(0, 0.1, 3 * block, dtype=dtype)
    v = torch.randn(3 * block, 3, generator=torch.Generator().manual_seed(1), dtype=dtype)
    beta = 100.0 if dtype == torch.float32 else 300.0
    for q in ([1.0, 0.0], [1.0, 0.5]):
        x = torch.zeros(1, 64, dtype=dtype)
        x[0, :2] = torch.tensor(q, dtype=dtype)
        with torch.no_grad():
            out, lse, _ = stream(x, pat, v, beta, None, None, need_lse=True, need_weights=False)
        want, want_lse = reference(x, pat, v, beta)
        # float32: scores near 144 (base 2) are rounded by up to 8e-6, so are the weights' exponents
        rtol, atol = (1e-4, 1e-5) if dtype == torch.float32 else (1e-13, 1e-13)
        torch.testing.assert_close(out.double(), want, rtol=rtol, atol=atol)
        torch.testing.assert_close(lse.double(), want_lse, rtol=rtol, atol=atol)
    assert len(calls) == 2


@pytest.mark.parametrize(("split_bytes", "parts"), [(25600, [(0, 200), (200, 400)]), (25601, [(0, 400)])])
def test_parts_on_threads_equal_one_pass(monkeypatch, split_bytes, parts):
    """Two threads: a memory of at least two parts of ``SPLIT_BYTES`` (400 x 16 doubles: 51,200 bytes) is split
    in two parts, each one compiled pass on a thread, merged once; a smaller one is one pass on this thread."""
    g = torch.Generator().manual_seed(3)
    pat, q = torch.randn(400, 16, generator=g, dtype=F64), torch.randn(1, 16, generator=g, dtype=F64)
    seen = []
    real = fused_softmax.associate
    monkeypatch.setattr(fused_softmax, "associate", lambda *a: seen.append(a[3:5]) or real(*a))
    monkeypatch.setattr(online_softmax, "SPLIT_BYTES", split_bytes)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with torch.no_grad():
            out, lse, _ = stream(q, pat, pat, 30.0, None, None, need_lse=True, need_weights=False)
    finally:
        torch.set_num_threads(threads)
    assert sorted(seen) == parts
    want, want_lse = reference(q, pat, pat, 30.0)
    torch.testing.assert_close(out, want, rtol=1e-13, atol=1e-13)
    torch.testing.assert_close(lse, want_lse, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_retrieve_takes_one_pass_and_equals_the_general_path(calls, monkeypatch, dtype):
    g = torch.Generator().manual_seed(4)
    xi = torch.randn(500, 32, generator=g, dtype=dtype)
    q = xi[3] + 0.1 * torch.randn(32, generator=g, dtype=dtype)
    for beta in (0.5, 8.0, 200.0):
        with torch.no_grad():
            fast = am.retrieve(xi, q[None], beta)
            monkeypatch.setattr(online_softmax, "use_fused", False)
            general = am.retrieve(xi, q[None], beta)
            monkeypatch.setattr(online_softmax, "use_fused", True)
        tol = 2e-6 if dtype == torch.float32 else 1e-13
        torch.testing.assert_close(fast, general, rtol=tol, atol=tol)
    assert len(calls) == 3


def test_gradients_take_the_general_path(calls):
    g = torch.Generator().manual_seed(5)
    xi = torch.randn(50, 8, generator=g, dtype=F64)
    q = torch.randn(1, 8, generator=g, dtype=F64, requires_grad=True)
    am.retrieve(xi, q, 3.0).sum().backward()
    want = torch.func.grad(lambda x: reference(x, xi, xi, 3.0)[0].sum())(q.detach())
    assert not calls
    torch.testing.assert_close(q.grad, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("where", ["queries", "patterns", "values"])
def test_nan_and_inf_reach_the_result_check(calls, bad, where):
    """A non-finite query, pattern or value (even one whose weight is 0) makes the one pass's result NaN or Inf
    (never a finite answer), and the result's check names the argument."""
    xi, q, v = torch.randn(100, 16), torch.randn(1, 16), torch.randn(100, 4)
    {"queries": q, "patterns": xi, "values": v}[where][0, 3] = bad
    if where == "patterns":  # the stored patterns read out (a score of -inf alone would hide its pattern)
        v = xi
    with torch.no_grad():
        out, _, _ = stream(q, xi, v, 2.0, None, None, need_lse=False, need_weights=False)
        assert not torch.isfinite(out).all()
        with pytest.raises(ValueError, match=where):
            am.retrieve(xi, q, 2.0, values=v)
    assert calls


def test_a_memory_with_leading_dimensions_of_one_takes_one_pass(calls):
    """A static layer's memory given for one query, ``(1, K, d)`` (expanded, not copied): the same one pass."""
    g = torch.Generator().manual_seed(6)
    xi, q = torch.randn(200, 16, generator=g, dtype=F64), torch.randn(1, 1, 16, generator=g, dtype=F64)
    with torch.no_grad():
        out, lse, _ = stream(
            q, xi.expand(1, 200, 16), xi[None], 4.0, None, None, need_lse=True, need_weights=False
        )
    assert calls == [(0, 200)] and out.shape == (1, 1, 16) and lse.shape == (1, 1)
    want, want_lse = reference(q[0], xi, xi, 4.0)
    torch.testing.assert_close(out[0], want, rtol=1e-13, atol=1e-13)
    torch.testing.assert_close(lse[0], want_lse, rtol=1e-13, atol=1e-13)


def test_a_strided_memory_is_read_in_place_by_the_chunks(calls):
    """The one pass reads contiguous memories only: a transposed view takes the chunks (no copy of the memory)."""
    g = torch.Generator().manual_seed(7)
    xi_t, q = torch.randn(16, 300, generator=g, dtype=F64), torch.randn(1, 16, generator=g, dtype=F64)
    with torch.no_grad():
        out = am.retrieve(xi_t.T, q, 2.0)
    assert not calls
    torch.testing.assert_close(out, reference(q, xi_t.T, xi_t.T, 2.0)[0], rtol=1e-13, atol=1e-13)


@pytest.fixture
def chunk_calls(monkeypatch):
    """Counts the compiled calls of the chunks: (weigh_chunk, merge_slots)."""
    seen = [0, 0]
    weigh, merge = fused_softmax.weigh_chunk, fused_softmax.merge_slots

    def counted_weigh(*args):
        seen[0] += 1
        return weigh(*args)

    def counted_merge(*args):
        seen[1] += 1
        return merge(*args)

    monkeypatch.setattr(fused_softmax, "weigh_chunk", counted_weigh)
    monkeypatch.setattr(fused_softmax, "merge_slots", counted_merge)
    return seen


@pytest.mark.parametrize("beta", [1.0, 200.0, 3000.0])
@pytest.mark.parametrize("chunk", [1, 29, 150])
@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_compiled_chunks_equal_the_unchunked_computation(chunk_calls, monkeypatch, beta, chunk, dtype):
    """Several queries take the chunks, each chunk's maximum, weights and sum one compiled call and the partial
    results merged by another (chunk=29: 11 chunks in groups of 7, two merges; chunk=1: a merge per chunk; a memory
    in one chunk is one softmax, tests/test_online_softmax.py): equal
    to the unchunked float64 computation and to PyTorch's operations (online_softmax.use_fused off, no compiled
    call), the log-partition too."""
    g = torch.Generator().manual_seed(int(beta) + chunk)
    k, q, v = (torch.randn(*s, generator=g, dtype=dtype) for s in ((300, 6), (5, 6), (300, 4)))
    with torch.no_grad():
        out, lse, _ = stream(q, k, v, beta, None, chunk, need_lse=True, need_weights=False)
        chunks = -(-300 // chunk)
        assert chunk_calls[0] == chunks and chunk_calls[1] >= 1
        monkeypatch.setattr(online_softmax, "use_fused", False)
        plain, plain_lse, _ = stream(q, k, v, beta, None, chunk, need_lse=True, need_weights=False)
        assert chunk_calls[0] == chunks
    want, want_lse = reference(q, k, v, beta)
    tol = 2e-6 if dtype == torch.float32 else 1e-13
    for got in ((out, lse), (plain, plain_lse)):
        torch.testing.assert_close(got[0].double(), want, rtol=tol, atol=tol)
        torch.testing.assert_close(got[1].double(), want_lse, rtol=tol, atol=tol * max(1.0, beta))


@pytest.mark.parametrize("bad", [math.nan, -math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("where", ["queries", "patterns", "values"])
def test_nan_and_inf_reach_the_result_of_the_compiled_chunks(chunk_calls, bad, where):
    """A non-finite query, pattern or value (a NaN of either sign: the maximum over the bits' keys meets them
    differently) makes the chunks' result NaN or Inf in the rows it touches, and the result's check names it."""
    xi, q, v = torch.randn(100, 16), torch.randn(3, 16), torch.randn(100, 4)
    {"queries": q, "patterns": xi, "values": v}[where][0, 3] = bad
    if where == "patterns":
        v = xi
    with torch.no_grad():
        out, _, _ = stream(q, xi, v, 2.0, None, 30, need_lse=False, need_weights=False)
    assert chunk_calls[0] and not torch.isfinite(out).all()
    with pytest.raises(ValueError, match=where):
        am.retrieve(xi, q, 2.0, values=v, chunk_size=30)
