"""The candidate backend's certificate (docs/bank.md): on random and on clustered banks, the weight outside the
rows it scored never exceeds the bound it reports; with the fallback, the answer is within the tolerance."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from assocmem.engines.bank import MemoryBank
from assocmem.engines.bank.candidates import CandidateBackend

faiss = pytest.importorskip(
    "faiss", reason="pip install 'assocmem[bank]' (faiss-cpu) for the candidate backend"
)

D = torch.float64


def make_bank(kind: str, k: int, d: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    if kind == "random":
        return torch.randn(k, d, generator=g, dtype=D)
    centers = 3.0 * torch.randn(max(1, k // 50), d, generator=g, dtype=D)
    return centers[torch.randint(0, centers.shape[0], (k,), generator=g)] + 0.3 * torch.randn(
        k, d, generator=g, dtype=D
    )


def queries_for(xi: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed + 1)
    pick = torch.randint(0, xi.shape[0], (n,), generator=g)
    return xi[pick] + 0.5 * torch.randn(n, xi.shape[1], generator=g, dtype=D)


def exact_weights(xi, q, beta, mask=None):
    s = beta * q @ xi.T
    if mask is not None:
        s = s.masked_fill(~mask, -torch.inf)
    return torch.softmax(s, -1)


@given(
    kind=st.sampled_from(["random", "clustered"]),
    index=st.sampled_from(["flat", "ivf", "hnsw"]),
    k=st.integers(50, 1500),
    d=st.integers(2, 24),
    beta=st.floats(0.05, 20.0),
    top=st.integers(1, 40),
    clusters=st.integers(1, 40),
    nprobe=st.integers(1, 6),
    masked=st.booleans(),
    seed=st.integers(0, 10**6),
)
def test_the_outside_weight_never_exceeds_the_bound(
    kind, index, k, d, beta, top, clusters, nprobe, masked, seed
):
    xi = make_bank(kind, k, d, seed)
    q = queries_for(xi, 4, seed)
    mask = None
    if masked:
        mask = torch.rand(4, k, generator=torch.Generator().manual_seed(seed)) < 0.8
        mask[:, 0] = True
    bank = MemoryBank(xi, backend="candidates", index=index, k=top, clusters=clusters, nprobe=nprobe,
                      max_probe=nprobe, outside_tol=1.0)  # fmt: skip
    m = None if mask is None else torch.zeros(4, k, dtype=D).masked_fill(~mask, -torch.inf)
    found = bank.backend.search_additive(q, beta, m, keep_candidates=True)
    assert not bool(found.certificate.fallback.any())
    rows_in_bank_order = bank.backend.local.patterns.block(0, k, D)  # clustered indexes put the rows in order
    assert torch.equal(rows_in_bank_order, xi[bank.ids])
    w = exact_weights(rows_in_bank_order, q, beta, mask)
    for i, rows in enumerate(found.candidates):
        assert rows.unique().numel() == rows.numel()
        outside = 1.0 - float(w[i, rows].sum())
        assert outside <= float(found.certificate.bound[i]) * (1 + 1e-9) + 1e-13, (
            outside,
            found.certificate.bound[i],
        )


@given(
    kind=st.sampled_from(["random", "clustered"]),
    index=st.sampled_from(["flat", "ivf", "hnsw"]),
    beta=st.floats(0.5, 30.0),
    tol=st.sampled_from([1e-2, 1e-6, 1e-12]),
    seed=st.integers(0, 10**6),
)
def test_with_the_fallback_the_answer_is_within_the_tolerance(kind, index, beta, tol, seed):
    xi = make_bank(kind, 800, 8, seed)
    v = torch.randn(800, 3, generator=torch.Generator().manual_seed(seed), dtype=D)
    q = queries_for(xi, 5, seed)
    bank = MemoryBank(xi, v, backend="candidates", index=index, k=16, clusters=16, nprobe=2, outside_tol=tol)
    got = bank.retrieve(q, beta)
    exact = exact_weights(xi, q, beta) @ v
    assert bool((got.bound <= tol).all())
    err = (got.states - exact).norm(dim=-1)
    assert bool((err <= 2 * got.bound * v.norm(dim=-1).max() + 1e-12).all()), (err, got.bound)
    assert bool((got.fallback <= (got.bound == 0)).all())  # where it fell back, no bound is left


def test_a_clustered_bank_is_certified_without_the_exact_pass():
    xi = make_bank("clustered", 20000, 16, 0)
    q = xi[:8] + 0.05 * torch.randn(8, 16, generator=torch.Generator().manual_seed(3), dtype=D)
    bank = MemoryBank(xi, backend="candidates", index="ivf", clusters=800, nprobe=2, outside_tol=1e-6)
    out = bank.retrieve(q, 20.0, steps=2)
    assert not bool(out.fallback.any()) and bool((out.bound < 1e-6).all())
    scored = bank.backend.search(q, 20.0).certificate.scored
    assert bool((scored < 20000 // 10).all()), scored  # a small part of the bank was read
    ref = MemoryBank(xi).retrieve(q, 20.0, steps=2)
    assert (out.states - ref).abs().max() < 1e-6 * 2 * xi.norm(dim=-1).max()


def test_a_random_bank_at_small_beta_falls_back_and_says_so():
    xi = make_bank("random", 3000, 32, 1)
    q = torch.randn(3, 32, dtype=D)
    out = MemoryBank(xi, backend="candidates", index="ivf", clusters=30, nprobe=1, max_probe=2).retrieve(
        q, 0.1
    )
    assert bool(out.fallback.all()) and bool((out.bound == 0).all())
    torch.testing.assert_close(out.states, MemoryBank(xi).retrieve(q, 0.1), rtol=0, atol=1e-12)


@pytest.mark.parametrize("index", ["flat", "ivf", "hnsw"])
def test_add_remove_save_and_load_keep_the_certificate(tmp_path, index):
    xi = make_bank("clustered", 1200, 8, 2)
    bank = MemoryBank(
        xi[:1000], backend="candidates", index=index, clusters=20, outside_tol=1e-3, storage="float16"
    )
    bank.add(xi[1000:])
    bank.remove(torch.arange(0, 1200, 5))
    keep = torch.arange(1200) % 5 != 0
    q = queries_for(xi[keep], 4, 2)
    got = bank.retrieve(q, 5.0)
    stored = bank.backend.local.patterns.block(0, len(bank), D)
    exact = exact_weights(stored, q, 5.0) @ stored
    assert bool(((got.states - exact).norm(dim=-1) <= 2 * got.bound * stored.norm(dim=-1).max() + 1e-9).all())
    back = MemoryBank.load(bank.save(tmp_path / "b"))
    assert isinstance(back.backend, CandidateBackend) and back.backend.index == index
    again = back.retrieve(q, 5.0)
    torch.testing.assert_close(again.states, got.states, rtol=0, atol=1e-12)


def test_gradients_flow_to_the_queries_and_beta_as_the_exact_ones():
    xi = make_bank("clustered", 3000, 8, 5)
    q = queries_for(xi, 3, 5).requires_grad_()
    beta = torch.tensor(6.0, dtype=D, requires_grad=True)
    bank = MemoryBank(xi, backend="candidates", index="ivf", clusters=60, outside_tol=1e-12)
    got = bank.retrieve(q, beta, steps=2)
    assert not bool(got.fallback.any())
    g = torch.autograd.grad(got.states.square().sum(), (q, beta))
    ref = MemoryBank(xi).retrieve(q, beta, steps=2)
    want = torch.autograd.grad(ref.square().sum(), (q, beta))
    for a, b in zip(g, want, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-8)
