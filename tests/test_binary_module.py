"""The binary networks as ``torch.nn.Module``s (buffers, ``.to``, ``state_dict``) and their energies read out of the
scaled domain without overflow: ``x^30`` at N = 784 (past float32) and ``exp`` with ``beta = 100`` (past float64)
give exact values or ``(sign, log|E|)``, a clear error where the requested dtype cannot hold them, and no numpy
warning (docs/binary-dam.md, docs/bad-input.md)."""

import math
import warnings
from fractions import Fraction

import pytest
import torch
from torch import nn

from assocmem.engines.binary.dam import BinaryDAM, ClassicalHopfield

N = 784


def spins(k, n, seed, dtype=torch.float32):
    gen = torch.Generator().manual_seed(seed)
    return torch.where(torch.rand(k, n, generator=gen) < 0.5, -1.0, 1.0).to(dtype)


def cues_of(xi, flip, seed):
    gen = torch.Generator().manual_seed(seed)
    return torch.where(torch.rand(xi.shape, generator=gen) < flip, -xi, xi)


def overlaps(xi, sigma):
    return [[int(v) for v in row] for row in (sigma.double() @ xi.double().T).tolist()]


def test_power_30_at_784_energies_are_exact_in_float64_and_refused_in_float32():
    xi = spins(6, N, 0)
    sigma = torch.cat([xi[:1], cues_of(xi[1:3], 0.2, 1)])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no numpy overflow warning on the way
        dam = BinaryDAM(xi, "power", n=30)
        sign, logabs = dam.slog_energy(sigma)
        e64 = dam.energy(sigma.double())
    for b, row in enumerate(overlaps(xi, sigma)):
        exact = -sum(m**30 for m in row)  # a Python integer, exact
        assert math.isclose(float(e64[b]), exact, rel_tol=1e-13)
        assert sign[b] == -1 and math.isclose(float(logabs[b]), math.log(-exact), rel_tol=1e-13)
    with pytest.raises(
        ValueError, match=r"energy of state 0 is -10\^86\.8, outside torch.float32's range.*float64"
    ):
        dam.energy(sigma)  # 784^30 ~ 7e86 does not fit float32: an error, not -inf
    with pytest.raises(ValueError, match=r"record=True keeps the energies in torch\.float32.*slog_energy"):
        dam.recall(sigma, record=True)
    res = dam.recall(sigma.double(), record=True, generator=torch.Generator().manual_seed(3))
    assert torch.isfinite(res.energies).all() and (res.energies.diff(dim=0) <= 0).all()


def test_exp_beta_100_energies_are_held_as_sign_and_log_magnitude():
    xi = spins(5, N, 2)
    sigma = torch.cat([xi[:2], cues_of(xi[2:4], 0.1, 3)])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        dam = BinaryDAM(xi, "exp", beta=100.0)
        sign, logabs = dam.slog_energy(sigma)
    for b, row in enumerate(overlaps(xi, sigma)):
        top = max(row)
        # log sum_mu e^(beta m_mu) / beta, exactly: factor out e^(beta top); the rest is a sum of exact rationals
        rest = sum(Fraction(math.exp(100.0 * (m - top))) for m in row)
        exact = 100.0 * top + math.log(rest) - math.log(100.0)
        assert sign[b] == -1 and math.isclose(float(logabs[b]), exact, rel_tol=1e-14)
    assert logabs[0] > 78000  # e^78400: no float holds it
    with pytest.raises(ValueError, match=r"outside torch.float64's range; use slog_energy"):
        dam.energy(sigma.double())
    with pytest.raises(ValueError, match="record=True"):
        dam.recall(sigma.double(), record=True)
    # recall itself needs no energy: the memories are fixed points, the cues return to them
    res = dam.recall(sigma, generator=torch.Generator().manual_seed(4))
    assert torch.equal(res.states[:2], xi[:2]) and torch.equal(res.states[2:], xi[2:4])


def test_energies_that_fit_are_unchanged_and_slog_agrees_with_them():
    xi = spins(20, 64, 5, torch.float64)
    sigma = cues_of(xi[:6], 0.3, 6)
    for dam in (BinaryDAM(xi, "power", n=3), BinaryDAM(xi, "exp", beta=0.3), ClassicalHopfield(xi)):
        e = dam.energy(sigma)
        sign, logabs = dam.slog_energy(sigma)
        torch.testing.assert_close(sign * torch.exp(logabs), e, rtol=1e-12, atol=0.0)
    t = xi.T @ xi
    t.fill_diagonal_(0)
    torch.testing.assert_close(ClassicalHopfield(xi).energy(sigma), -0.5 * ((sigma @ t) * sigma).sum(1))


def test_the_binary_networks_are_modules_whose_tables_follow_to_and_load_state_dict():
    xi = spins(8, 40, 7)
    dam = BinaryDAM(xi, "rectified", n=3)
    assert isinstance(dam, nn.Module) and isinstance(ClassicalHopfield(xi), nn.Module)
    assert list(dam.state_dict()) == ["patterns"] and dict(dam.named_buffers())["patterns"] is dam.patterns
    cues = cues_of(xi, 0.15, 8)
    before = dam.recall(cues, generator=torch.Generator().manual_seed(9))
    dam.recall(cues, backend="numba")  # fill the numba cache of int8 patterns
    assert dam.double() is dam and dam.patterns.dtype == torch.float64
    assert dam._xi_t == {}  # the sweeps' copies were rebuilt from the converted patterns
    after = dam.recall(cues.double(), generator=torch.Generator().manual_seed(9))
    assert torch.equal(after.states, before.states.double()) and torch.equal(after.steps, before.steps)
    dam.to(torch.float16)  # the tables stay float64 whatever the patterns' dtype: recall is unchanged
    assert dam._field_table.values.dtype == torch.float64
    assert torch.equal(dam.recall(cues, generator=torch.Generator().manual_seed(9)).states, before.states)
    # load_state_dict replaces the patterns and everything derived from them
    other = BinaryDAM(spins(8, 40, 10), "rectified", n=3)
    other.load_state_dict(BinaryDAM(xi, "rectified", n=3).state_dict())
    torch.testing.assert_close(other.patterns, xi)
    assert torch.equal(other.recall(cues, generator=torch.Generator().manual_seed(9)).states, before.states)
    # loading non-spins is refused before anything changes
    bad = {"patterns": torch.full((8, 40), 0.5)}
    with pytest.raises(ValueError, match="BinaryDAM: patterns must hold only"):
        other.load_state_dict(bad)
    torch.testing.assert_close(other.patterns, xi)
    hop = ClassicalHopfield(xi).double()
    assert hop.couplings.dtype == torch.float64 and list(hop.state_dict()) == ["patterns"]


def test_meta_tensors_are_refused_by_name():
    dam = BinaryDAM(spins(4, 10, 11), "power", n=3)
    with pytest.raises(ValueError, match="cues is on the meta device"):
        dam.recall(torch.ones(2, 10, device="meta"))
    with pytest.raises(ValueError, match="sigma is on the meta device"):
        dam.energy(torch.ones(2, 10, device="meta"))
