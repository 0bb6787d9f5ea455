"""The numba loops of the binary engine: the float32 filter's bound against exact integer arithmetic, ties and near
ties left to the float64 field, the bucket argsort against torch's stable argsort, the integer agreements against
the matrix product, and the same moves on one thread or two (engines/binary/numba_loop.py, threads.py)."""

import numpy as np
import pytest
import torch

from assocmem.engines.binary import numba_loop, sweeps, threads
from assocmem.engines.binary.dam import BinaryDAM, ClassicalHopfield
from assocmem.engines.binary.tables import ScaledTable, Values, scaled_table


def spins(*shape, gen):
    return torch.where(torch.rand(*shape, generator=gen) < 0.5, -1.0, 1.0).double()


def _table(ss: list[int], dd: list[int], count: int) -> ScaledTable:
    return scaled_table([Values(ints=ss), Values(ints=dd)], len(ss) - 1, count)


@pytest.mark.parametrize("seed", range(6))
def test_float32_field_is_within_the_bound_of_the_exact_field(seed):
    """Integer tables up to 2^40 of both signs (heavy cancellation): the float32 field plus sigma C32 is within
    ``factor A32 + floor`` of the exact (Python integer) field for every spin, so a sign outside it is certain."""
    rng = np.random.default_rng(seed)
    n, k = 40, 700
    scale = 2 ** int(rng.integers(10, 40))
    ss = [int(v) for v in rng.integers(-scale, scale, n + 1)]
    dd = [int(v) for v in rng.integers(-scale, scale, n + 1)]
    ss[n // 2] = dd[n // 2] = 1  # and some tiny entries among the huge ones
    table = _table(ss, dd, k)
    assert table.exact
    factor, floor = numba_loop.filter_bound(k)
    agree = rng.integers(n // 2 - 3, n // 2 + 4, k).astype(np.int32)
    pd = np.empty(k, dtype=np.complex64)
    svec = np.empty(k, dtype=np.float32)
    c32, a32 = numba_loop._read_row(agree, table.narrow[0], pd, svec)
    worst = 0.0
    for _ in range(30):
        x = rng.choice(np.array([-1, 1], dtype=np.int8), k)
        si = int(rng.choice([-1, 1]))
        exact = sum(int(xm) * ss[km] for xm, km in zip(x, agree, strict=True)) + si * sum(
            dd[km] for km in agree
        )
        approx = float(numba_loop._dot32(x, svec)) + si * float(c32)
        bound = factor * float(a32) + floor
        assert abs(approx - exact) <= bound, (approx, exact, bound)
        worst = max(worst, abs(approx - exact) / bound)
    assert worst > 0  # the float32 sums did round: the bound was tested, not idle


def test_ties_are_decided_by_the_float64_field_and_match_the_torch_sweep():
    """The classical network of two memories on an even N has exact ties (h_i = 0 keeps the spin) in a quarter of
    its fields: the filter cannot decide those, so the float64 field does, and every move equals the PyTorch
    sweep's, as do those of the scaled tables of exp."""
    gen = torch.Generator().manual_seed(3)
    xi, cues = spins(2, 24, gen=gen), spins(64, 24, gen=gen)
    for net in (ClassicalHopfield(xi), BinaryDAM(xi, "exp", beta=0.7)):
        sweeps.numba_tally.update(checks=0, flips=0, float64=0)
        runs = [
            net.recall(cues, generator=torch.Generator().manual_seed(1), backend=b, record=True)
            for b in ("numba", "torch")
        ]
        assert torch.equal(runs[0].states, runs[1].states) and torch.equal(runs[0].steps, runs[1].steps)
        if isinstance(net, ClassicalHopfield):
            assert sweeps.numba_tally["float64"] > 0


def test_bucket_argsort_is_the_stable_argsort():
    gen = torch.Generator().manual_seed(0)
    for n in (1, 2, 7, 100, 784):
        keys = torch.rand(50, n, generator=gen, dtype=torch.float64)
        keys[:10] = torch.floor(keys[:10] * 4) / 4  # ties: equal keys must keep their index order
        keys[10:12] = 1 - 2.0**-53  # the largest key below 1
        out = torch.empty(50, n, dtype=torch.int64)
        threads.run_units(numba_loop.stable_argsort_rows, (keys.numpy(), out.numpy()), 50, 2)
        assert torch.equal(out, keys.argsort(dim=1, stable=True))


@pytest.mark.parametrize(("n", "k", "b"), [(7, 5, 16), (33, 17, 20), (100, 64, 40)])
def test_integer_agreements_equal_the_matrix_product(n, k, b):
    gen = torch.Generator().manual_seed(n)
    xi, sigma = spins(k, n, gen=gen), spins(b, n, gen=gen)
    expected = ((sigma @ xi.T + n) / 2).to(torch.int32)
    assert torch.equal(sweeps.agreements(xi, sigma.to(torch.int8)), expected)  # numba, integer sums
    assert torch.equal(sweeps.agreements(xi, sigma), expected)  # float32 matrix product
    assert torch.equal(sweeps.agreements(xi, sigma[:3].to(torch.int8)), expected[:3])  # few cues: the product


def test_one_thread_or_two_make_the_same_moves():
    gen = torch.Generator().manual_seed(5)
    xi = spins(300, 60, gen=gen)
    cues = spins(200, 60, gen=gen)
    dam = BinaryDAM(xi, "rectified", n=4)
    before = torch.get_num_threads()
    try:
        runs = []
        for t in (1, 2):
            torch.set_num_threads(t)
            runs.append(dam.recall(cues, generator=torch.Generator().manual_seed(2), backend="numba"))
    finally:
        torch.set_num_threads(before)
    assert torch.equal(runs[0].states, runs[1].states) and torch.equal(runs[0].steps, runs[1].steps)


def test_a_unit_held_by_a_descheduled_helper_is_finished_by_the_calling_thread():
    """The counter is spent, unit 2 is taken by a helper that never comes back and unit 4 is being copied out:
    the calling thread computes 0-3 itself (the same rows), leaves 4 to its writer and reports it pending; the
    late helper can no longer publish unit 2."""
    keys = torch.rand(5, 50, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    out = torch.full((5, 50), -1, dtype=torch.int64)
    status = np.zeros(5, dtype=np.int64)
    status[2], status[4] = threads.TAKEN, threads.WRITING
    counter = np.array([5], dtype=np.int64)
    pending = numba_loop.stable_argsort_rows(keys.numpy(), out.numpy(), status, counter, True)
    assert pending == 1 and list(status) == [threads.DONE] * 4 + [threads.WRITING]
    assert torch.equal(out[:4], keys[:4].argsort(dim=1, stable=True)) and (out[4] == -1).all()
    assert not threads.begin_writing(status, 2)
