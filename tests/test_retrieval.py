"""The retrieval engine against the attention formula and the general network's Model B (docs/reference.md §2)."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import assocmem as am
from assocmem.engines.retrieval import energy
from assocmem.models import model_b

F64 = torch.float64


def attention(q, k, v, beta):
    return torch.softmax(beta * q @ k.transpose(-1, -2), dim=-1) @ v


@pytest.mark.parametrize("chunk", [None, 1, 7, 64])
def test_one_step_is_softmax_attention(chunk):
    k, v, q = torch.randn(50, 6, dtype=F64), torch.randn(50, 3, dtype=F64), torch.randn(9, 6, dtype=F64)
    torch.testing.assert_close(am.retrieve(k, q, 0.7, values=v, chunk_size=chunk), attention(q, k, v, 0.7))
    torch.testing.assert_close(am.retrieve(k, q, 0.7, chunk_size=chunk), attention(q, k, k, 0.7))


@pytest.mark.parametrize("chunk", [None, 5])
def test_n_steps_are_n_iterations_and_values_read_the_last_state(chunk):
    k, v, q = torch.randn(30, 5, dtype=F64), torch.randn(30, 2, dtype=F64), torch.randn(4, 5, dtype=F64)
    x = q
    for _ in range(4):
        x = attention(x, k, k, 2.0)
    torch.testing.assert_close(am.retrieve(k, q, 2.0, steps=4, chunk_size=chunk), x)
    x3 = q
    for _ in range(3):
        x3 = attention(x3, k, k, 2.0)
    torch.testing.assert_close(
        am.retrieve(k, q, 2.0, values=v, steps=4, chunk_size=chunk), attention(x3, k, v, 2.0)
    )


def test_per_item_memories_equal_one_retrieval_per_item():
    k, q = torch.randn(3, 20, 4, dtype=F64), torch.randn(3, 4, dtype=F64)
    out = am.retrieve(k, q, 1.5, steps=2)
    for b in range(3):
        torch.testing.assert_close(out[b], am.retrieve(k[b], q[b : b + 1], 1.5, steps=2)[0])
    q3 = torch.randn(3, 6, 4, dtype=F64)
    torch.testing.assert_close(am.retrieve(k, q3, 1.5, chunk_size=3), attention(q3, k, k, 1.5))


@given(st.integers(1, 40), st.integers(1, 6), st.floats(0.05, 20.0), st.integers(1, 50))
def test_energy_equals_the_reduced_model_b_network(k, d, beta, chunk):
    xi, x = torch.randn(k, d, dtype=F64), torch.randn(5, d, dtype=F64)
    expected = model_b(xi, beta=beta, reduced=True).energy({"v": x})
    torch.testing.assert_close(energy(xi, x, beta, chunk_size=chunk), expected)
    torch.testing.assert_close(energy(xi, x, beta), expected)


@given(st.integers(2, 30), st.integers(1, 8), st.floats(0.05, 30.0), st.sampled_from([None, 3]))
def test_energy_never_increases_along_the_updates(k, d, beta, chunk):
    xi, x = torch.randn(k, d, dtype=F64), 3 * torch.randn(6, d, dtype=F64)
    res = am.retrieve(xi, x, beta, steps=6, chunk_size=chunk, record=True)
    assert res.energies.shape == (7, 6)
    net = model_b(xi, beta=beta, reduced=True)
    torch.testing.assert_close(res.energies[-1], net.energy({"v": res.states}))
    torch.testing.assert_close(res.energies[0], net.energy({"v": x}))
    assert (res.energies.diff(dim=0) <= 1e-10).all()


def test_until_converged_reaches_a_fixed_point_and_returns_weights():
    xi = torch.randn(10, 16, dtype=F64)
    res = am.retrieve(
        xi, xi[:3] + 0.1 * torch.randn(3, 16, dtype=F64), 4.0, steps=None, tol=1e-12, return_weights=True
    )
    torch.testing.assert_close(attention(res.states, xi, xi, 4.0), res.states, atol=1e-11, rtol=0)
    torch.testing.assert_close(res.weights @ xi, res.states)
    assert res.steps.shape == (3,) and ((1 < res.steps) & (res.steps < 1000)).all()
    # the well-separated patterns are retrieved in one step, up to an error exponentially small in beta
    wide = torch.randn(10, 64, dtype=F64)  # separation ~ 64 - O(8): error ~ exp(-beta * 40)
    assert (am.retrieve(wide, wide[:3], 1.0) - wide[:3]).abs().max() < 1e-10


def test_mask_hides_memories():
    k, q = torch.randn(12, 3, dtype=F64), torch.randn(2, 3, dtype=F64)
    mask = torch.zeros(12, dtype=F64)
    mask[5:] = float("-inf")
    for chunk in (None, 4):
        torch.testing.assert_close(
            am.retrieve(k, q, 1.0, mask=mask, chunk_size=chunk), attention(q, k[:5], k[:5], 1.0)
        )


def test_gradients_flow_through_all_steps_and_match_finite_differences():
    k = torch.randn(8, 3, dtype=F64, requires_grad=True)
    q = torch.randn(2, 3, dtype=F64, requires_grad=True)
    torch.autograd.gradcheck(lambda k, q: am.retrieve(k, q, 1.3, steps=3), (k, q))
    torch.autograd.gradcheck(lambda k, q: am.retrieve(k, q, 1.3, steps=3, chunk_size=3), (k, q))


def test_torch_compile_matches_eager():
    k, q = torch.randn(40, 8), torch.randn(5, 8, requires_grad=True)
    f = torch.compile(lambda k, q: am.retrieve(k, q, 2.0, steps=3), backend="eager", fullgraph=True)
    out = f(k, q)
    torch.testing.assert_close(out, am.retrieve(k, q, 2.0, steps=3))
    out.sum().backward()
    assert q.grad is not None and torch.isfinite(q.grad).all()


def test_dtype_follows_the_inputs():
    k = torch.randn(6, 3, dtype=torch.float32)
    assert am.retrieve(k, k[:2], 1.0).dtype == torch.float32


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda k, q: am.retrieve(k, q[:, :2]), "queries must have shape"),
        (lambda k, q: am.retrieve(k[:0], q), "patterns must have shape"),
        (lambda k, q: am.retrieve(k, q, -1.0), "beta must be"),
        (lambda k, q: am.retrieve(k, q, steps=0), "steps must be"),
        (lambda k, q: am.retrieve(k, q, chunk_size=0), "chunk_size must be"),
        (lambda k, q: am.retrieve(k, q, values=k[:2]), "values must be"),
        (lambda k, q: am.retrieve(k, q.double()), "share a dtype"),
        (lambda k, q: am.retrieve(k, q * float("nan")), "NaN"),
        (lambda k, q: am.retrieve(k.long(), q), "floating point"),
        (lambda k, q: am.retrieve(k, q, return_weights=True, chunk_size=2), "return_weights"),
    ],
)
def test_bad_input_is_a_clear_error(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call(torch.randn(5, 3), torch.randn(2, 3))


@pytest.mark.parametrize("shape", ["shared", "per_item"])
def test_the_fused_attention_path_gives_the_same_result(monkeypatch, shape):
    """On CUDA a plain association goes through scaled_dot_product_attention; forced here on the CPU."""
    from assocmem.engines import association

    monkeypatch.setattr(association, "SDPA_DEVICES", {"cpu"})
    k = torch.randn(20, 4, dtype=F64) if shape == "shared" else torch.randn(3, 20, 4, dtype=F64)
    q = torch.randn(3, 4, dtype=F64)
    mask = torch.zeros(20, dtype=F64)
    mask[15:] = float("-inf")
    expected = attention(q.unsqueeze(1) if shape == "per_item" else q, k[..., :15, :], k[..., :15, :], 0.9)
    out = am.retrieve(k, q, 0.9, steps=2, mask=mask)
    x = attention(expected, k[..., :15, :], k[..., :15, :], 0.9)
    torch.testing.assert_close(out, x.squeeze(1) if shape == "per_item" else x)
