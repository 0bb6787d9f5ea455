"""The binary Dense Associative Memory and the classical Hopfield network (docs/reference.md §2-3): callable
and Lagrangian F against the general network, XOR, the classical equivalence, exactness at the extremes against
big-integer / high-precision references, the numba and PyTorch sweeps against each other, and bad input.
Energies, fields and every spin move against model A, for each named F and backend, are rows of the engine x
preset table (tests/test_engines.py)."""

import decimal
import math
import os
import subprocess
import sys

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import assocmem as am
from assocmem.engines.binary.dam import BinaryDAM, ClassicalHopfield, Recall
from assocmem.engines.binary.sweeps import random_orders
from assocmem.models import model_a

F64 = torch.float64
NAMED = [("power", {"n": 2}), ("power", {"n": 3}), ("rectified", {"n": 4}), ("exp", {"beta": 0.3})]


def spins(*shape, gen=None, dtype=F64):
    return torch.where(torch.rand(*shape, generator=gen) < 0.5, -1.0, 1.0).to(dtype)


def test_callable_F_and_lagrangian_F():
    xi, sigma = spins(5, 8), spins(4, 8)
    cube = BinaryDAM(xi, lambda x: x**3)
    torch.testing.assert_close(cube.energy(sigma), BinaryDAM(xi, "power", n=3).energy(sigma))
    assert cube.exact  # integer-valued in float64: tabulated exactly
    soft = BinaryDAM(xi, am.Sigmoid(0.5))
    ref = model_a(xi, am.Sigmoid(0.5), feature=am.Abs(), reduced=True).energy({"v": sigma})
    torch.testing.assert_close(soft.energy(sigma), ref)


def test_xor_fields():
    """KH16: memories (-1,-1,-1), (-1,1,1), (1,-1,1), (1,1,-1); the field on z is E(x,y,-1) - E(x,y,+1)."""
    xor = torch.tensor([[-1, -1, -1], [-1, 1, 1], [1, -1, 1], [1, 1, -1]], dtype=F64)
    grid = torch.tensor([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], dtype=F64)
    xy = grid[:, 0] * grid[:, 1]
    torch.testing.assert_close(BinaryDAM(xor, "power", n=3).field(grid)[:, 2], -48 * xy)
    for n, size in zip(range(2, 6), (6, 24, 78, 240), strict=True):
        torch.testing.assert_close(BinaryDAM(xor, "rectified", n=n).field(grid)[:, 2], -size * xy)
    for n in (2, 4, 6):
        assert (BinaryDAM(xor, "power", n=n).field(grid)[:, 2] == 0).all()
    # z = Sign[-xy] is a fixed point of the odd-power and rectified networks: the update computes XOR.
    for dam in (BinaryDAM(xor, "power", n=3), BinaryDAM(xor, "rectified", n=2)):
        cues = torch.cat([xor[:, :2], -xor[:, 2:]], dim=1)  # z wrong
        assert torch.equal(dam.recall(cues, mode="sync", max_steps=1).states[:, 2], xor[:, 2])


def test_classical_hopfield_is_the_n2_dam():
    """With F = x^2 the KH16 field is 4 sum_mu xi_mu,i a_mu = 4 sum_{j != i} T_ij sigma_j: same update exactly."""
    gen = torch.Generator().manual_seed(3)
    xi, sigma = spins(12, 40, gen=gen), spins(30, 40, gen=gen)
    hop, dam = ClassicalHopfield(xi), BinaryDAM(xi, "power", n=2)
    t = xi.T @ xi - 12 * torch.eye(40, dtype=F64)
    torch.testing.assert_close(hop.couplings, t)
    torch.testing.assert_close(hop.field(sigma), sigma @ t)
    torch.testing.assert_close(dam.field(sigma), 4 * sigma @ t)
    torch.testing.assert_close(hop.energy(sigma), -0.5 * ((sigma @ t) * sigma).sum(1))
    for mode in ("async", "sync"):
        a = hop.recall(sigma, mode=mode, generator=torch.Generator().manual_seed(1))
        b = dam.recall(sigma, mode=mode, generator=torch.Generator().manual_seed(1))
        assert torch.equal(a.states, b.states) and torch.equal(a.steps, b.steps)
    # the classical sync step by hand, ties (field exactly 0, even N) keeping the state
    h = sigma @ t
    step = torch.where(h > 0, 1.0, torch.where(h < 0, -1.0, sigma))
    assert (h == 0).any()
    assert torch.equal(hop.recall(sigma, mode="sync", max_steps=1).states, step)


@given(seed=st.integers(0, 10_000), f_index=st.integers(0, 3))
def test_async_recall_descends_and_ends_in_a_fixed_point(seed, f_index):
    """Every asynchronous flip lowers the energy; a converged state is stable: sign(h_i) never opposes sigma_i."""
    gen = torch.Generator().manual_seed(seed)
    F, kw = NAMED[f_index]
    dam = BinaryDAM(spins(7, 16, gen=gen), F, **kw)
    res = dam.recall(spins(5, 16, gen=gen), generator=gen, record=True)
    assert isinstance(res, Recall) and res.converged.all()
    assert (res.energies.diff(dim=0) <= 1e-9 * res.energies[0].abs().clamp(min=1)).all()
    assert res.energies.shape == (int(res.steps.max()) + 1, 5)
    torch.testing.assert_close(res.energies[-1], dam.energy(res.states))
    assert (res.states * dam.field(res.states) >= 0).all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.int8, torch.int64, torch.float16])
def test_cues_are_checked_as_converted_and_left_unchanged(dtype):
    """The recall's one pass (numba on CPU; PyTorch for float16) finds the first non-spin in row-major order, as
    check_spins does, and never writes the caller's cues (int8 cues once came back updated in place)."""
    gen = torch.Generator().manual_seed(2)
    xi = spins(6, 12, gen=gen)
    dam = BinaryDAM(xi, "power", n=3)
    cues = torch.where(
        torch.rand(20, 12, generator=gen) < 0.2, -xi[torch.arange(20) % 6], xi[torch.arange(20) % 6]
    )
    cues = cues.to(dtype)
    before = cues.clone()
    res = dam.recall(cues, generator=torch.Generator().manual_seed(0))
    assert torch.equal(cues, before) and res.states.dtype == dtype
    same = dam.recall(cues.double(), generator=torch.Generator().manual_seed(0))
    assert torch.equal(res.states.double(), same.states)
    for bad in (0, 3) + ((float("nan"),) if dtype.is_floating_point else ()):
        wrong = cues.clone()
        wrong[7, 5], wrong[9, 1] = bad, bad
        with pytest.raises(ValueError, match=r"cues must hold only \+1 and -1.*at index \(7, 5\)"):
            dam.recall(wrong)


def test_recall_never_starts_numbas_threads():
    """numba's OpenMP threads, once started, slow every later PyTorch operation 12-41x (docs/demo.md): a recall,
    with the user's NUMBA_THREADING_LAYER=omp, must not start numba's threading layer (its loops use threads.py)."""
    code = (
        "import torch, numba.np.ufunc.parallel as p\n"
        "from assocmem.engines import BinaryDAM\n"
        "xi = torch.sign(torch.randn(20, 30, generator=torch.Generator().manual_seed(0))) + 0.0\n"
        "xi[xi == 0] = 1.0\n"
        "torch.set_num_threads(2)\n"
        "BinaryDAM(xi, 'power', n=3).recall(xi.repeat(10, 1), backend='numba')\n"
        "print('started' if p._is_initialized else 'not started')\n"
    )
    env = {**os.environ, "NUMBA_THREADING_LAYER": "omp"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "not started"


@pytest.mark.parametrize(("F", "kw"), [("power", {"n": 3}), ("rectified", {"n": 30}), ("exp", {"beta": 1.0})])
def test_numba_and_torch_sweeps_agree_exactly(F, kw):
    """Same generator -> same orders -> the fused kernel and the PyTorch sweep reach the same states.

    In float64: the energies of ReP_30 at N = 50 reach 50^30 ~ 10^51, outside float32 (recorded there they were
    -inf before record=True refused such a network)."""
    gen = torch.Generator().manual_seed(7)
    dtype = torch.float64 if kw.get("n") == 30 else torch.float32
    xi = spins(60, 50, gen=gen, dtype=dtype)
    cues = torch.where(torch.rand(40, 50, generator=gen) < 0.3, -xi[:40], xi[:40])
    dam = BinaryDAM(xi, F, **kw)
    runs = [
        dam.recall(cues, generator=torch.Generator().manual_seed(11), backend=b, record=True)
        for b in ("numba", "torch")
    ]
    assert torch.equal(runs[0].states, runs[1].states)
    assert torch.equal(runs[0].steps, runs[1].steps)
    torch.testing.assert_close(runs[0].energies, runs[1].energies)
    assert runs[0].states.dtype == dtype and torch.isfinite(runs[0].energies).all()


def test_recall_is_reproducible_from_the_generator_and_orders_differ_per_sweep():
    gen = torch.Generator().manual_seed(0)
    xi = spins(30, 40, gen=gen)
    dam = BinaryDAM(xi, "power", n=2)
    cues = spins(20, 40, gen=gen)
    a = dam.recall(cues, generator=torch.Generator().manual_seed(5))
    b = dam.recall(cues, generator=torch.Generator().manual_seed(5))
    c = dam.recall(cues, generator=torch.Generator().manual_seed(6))
    assert torch.equal(a.states, b.states) and not torch.equal(a.states, c.states)
    orders = random_orders(2, 40, torch.Generator().manual_seed(1), torch.device("cpu"))
    assert not torch.equal(orders[0], orders[1])
    assert torch.equal(orders.sort(dim=1).values, torch.arange(40).expand(2, 40))


def _python_field(xi, sigma, i, F):
    """The KH16 energy difference of spin i with exact Python numbers (ints, or Decimals for exp)."""
    total = 0
    for row in xi:
        a = sum(x * s for j, (x, s) in enumerate(zip(row, sigma, strict=True)) if j != i)
        total += F(row[i] + a) - F(-row[i] + a)
    return total


def _python_sweep(xi, sigma, order, F):
    sigma = list(sigma)
    for i in order:
        h = _python_field(xi, sigma, i, F)
        if h * sigma[i] < 0:
            sigma[i] = -sigma[i]
    return sigma


@pytest.mark.parametrize("case", ["power30", "exp"])
def test_extreme_degrees_and_exp_at_784_match_exact_arithmetic(case):
    """n = 30 on N = 784 (F up to 784^30, past float32) and F = exp on N = 784 (e^784, past float64): the fields
    match big-integer / 60-digit Decimal arithmetic and an asynchronous sweep makes the exact reference's moves."""
    n_neurons, k = 784, 6
    gen = torch.Generator().manual_seed(1)
    xi = spins(k, n_neurons, gen=gen, dtype=torch.float32)
    flips = torch.rand(2, n_neurons, generator=gen) < torch.tensor([[0.3], [0.45]])
    cues = torch.where(flips, -xi[:2], xi[:2])
    if case == "power30":
        dam, F = BinaryDAM(xi, "power", n=30), (lambda x: x**30)
    else:
        decimal.getcontext().prec = 60
        dam, F = BinaryDAM(xi, "exp"), (lambda x: decimal.Decimal(x).exp())
    assert not dam.exact
    rows = [[int(v) for v in r] for r in xi.tolist()]
    cue0 = [int(v) for v in cues[0].tolist()]
    h = dam.field(cues.double())[0]
    for i in range(0, n_neurons, 97):
        exact = _python_field(rows, cue0, i, F)
        assert math.isclose(float(h[i]), float(exact), rel_tol=1e-9), (i, float(h[i]), exact)
    energy = -sum(F(sum(x * c for x, c in zip(row, cue0, strict=True))) for row in rows)
    assert math.isclose(float(dam.energy(cues.double())[0]), float(energy), rel_tol=1e-12)
    orders = random_orders(2, n_neurons, torch.Generator().manual_seed(9), torch.device("cpu"))
    for backend in ("numba", "torch"):
        res = dam.recall(cues, max_steps=1, generator=torch.Generator().manual_seed(9), backend=backend)
        for b in range(2):
            ref = _python_sweep(rows, [int(v) for v in cues[b].tolist()], orders[b].tolist(), F)
            assert res.states[b].tolist() == ref, (backend, b)


def test_exact_tables_keep_ties_and_large_k_switches_to_scaled():
    gen = torch.Generator().manual_seed(2)
    assert BinaryDAM(spins(2000, 100, gen=gen), "power", n=5).exact  # the KH16 appendix is exact
    assert not BinaryDAM(spins(10, 784, gen=gen), "power", n=8).exact
    assert not BinaryDAM(spins(3, 20, gen=gen), "exp").exact


def test_sync_mode_and_convergence_flags():
    gen = torch.Generator().manual_seed(4)
    xi = spins(3, 64, gen=gen)
    dam = BinaryDAM(xi, "rectified", n=3)
    cues = torch.where(torch.rand(3, 64, generator=gen) < 0.2, -xi, xi)
    res = dam.recall(cues, mode="sync")
    assert torch.equal(res.states, xi) and res.converged.all()
    assert (res.steps == 2).all()  # one sweep to fix the bits, one that changes nothing
    stuck = dam.recall(cues, max_steps=1)
    assert not stuck.converged.any() and (stuck.steps == 1).all()
    # integer states keep their dtype; energies come in the default dtype
    out = dam.recall(cues.to(torch.int8), record=True)
    assert out.states.dtype == torch.int8 and out.energies.dtype == torch.get_default_dtype()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: BinaryDAM(torch.tensor([[1.0, 0.0]]), "power", n=3), "only \\+1 and -1"),
        (lambda: BinaryDAM(torch.tensor([[1.0, float("nan")]]), "power", n=3), "found nan"),
        (lambda: BinaryDAM(torch.ones(0, 4), "power", n=3), "empty"),
        (lambda: BinaryDAM(torch.ones(4), "power", n=3), "shape"),
        (lambda: BinaryDAM([[1, -1]], "power", n=3), "torch.Tensor"),
        (lambda: BinaryDAM(torch.ones(2, 3, dtype=torch.bool), "power", n=3), "real tensor"),
        (lambda: BinaryDAM(torch.ones(2, 3), "power", n=0), "n must be a number >= 1"),
        (lambda: BinaryDAM(torch.ones(2, 3), "power"), "needs its degree n"),
        (lambda: BinaryDAM(torch.ones(2, 3), "cubic", n=3), "F must be one of"),
        (lambda: BinaryDAM(torch.ones(2, 3), lambda x: torch.exp(300 * x)), "not finite"),
        (lambda: ClassicalHopfield(torch.full((2, 3), 2.0)), "ClassicalHopfield: patterns must hold only"),
        (lambda: BinaryDAM(torch.ones(2, 3), "exp").recall(torch.ones(2, 4)), "N = 3 columns"),
        (lambda: BinaryDAM(torch.ones(2, 3), "exp").recall(torch.ones(3)), "shape \\(batch, N\\)"),
        (lambda: BinaryDAM(torch.ones(2, 3), "exp").energy(torch.zeros(1, 3)), "sigma must hold only"),
        (lambda: BinaryDAM(torch.ones(2, 3), "exp").recall(torch.ones(1, 3), mode="fast"), "mode must be"),
        (lambda: BinaryDAM(torch.ones(2, 3), "exp").recall(torch.ones(1, 3), max_steps=0), "max_steps"),
        (lambda: BinaryDAM(torch.ones(2, 3), "exp").recall(torch.ones(1, 3), backend="gpu"), "backend"),
        (lambda: BinaryDAM(torch.ones(2, 3), "exp").recall(torch.ones(1, 3), generator=3), "generator"),
    ],
)
def test_bad_input_is_a_clear_error(make, message):
    with pytest.raises((ValueError, TypeError), match=message):
        make()
