"""Every fixed-point loop returns the same result protocol: states, energies (T, *batch), steps, converged."""

import dataclasses

import pytest
import torch

import assocmem as am
from assocmem.engines import BinaryDAM
from assocmem.models import model_b
from assocmem.nn import Hopfield
from assocmem.nn.functional import hopfield_update

F64 = torch.float64


def _relax(xi, cues):
    hidden = torch.zeros(cues.shape[0], xi.shape[0], dtype=F64)
    net = model_b(xi, beta=0.5)
    res = am.relax(net, {"v": cues, "h": hidden}, method="dopri5", t_max=50.0, tol=1e-3, record=True)
    return res, (cues.shape[0],), res.states["v"]


def _retrieve(xi, cues):
    res = am.retrieve(xi, cues, 0.5, steps=None, tol=1e-8, max_steps=50, record=True)
    return res, (cues.shape[0],), res.states


def _recall(xi, cues):
    res = BinaryDAM(xi, F="power", n=3).recall(cues, record=True, generator=torch.Generator().manual_seed(0))
    return res, (cues.shape[0],), res.states


def _update(xi, cues):
    r, y = cues[:, None, None, :], xi[None, None].expand(cues.shape[0], 1, -1, -1)  # (B, H=1, L=1, d)
    res = hopfield_update(r, y, y, 0.5, max_steps=50, tol=1e-8, record=True)
    return res, (cues.shape[0], 1, 1), res.states


@pytest.mark.parametrize(
    "loop", [_relax, _retrieve, _recall, _update], ids=["relax", "retrieve", "recall", "update"]
)
def test_the_four_loops_return_the_same_fields_shapes_and_dtypes(loop):
    gen = torch.Generator().manual_seed(3)
    xi = torch.sign(torch.randn(5, 24, generator=gen, dtype=F64))
    cues = torch.where(torch.rand(3, 24, generator=gen, dtype=F64) < 0.1, -xi[:3], xi[:3])
    res, batch, final = loop(xi, cues)
    assert isinstance(res, am.FixedPoint)
    names = [f.name for f in dataclasses.fields(res)][:4]
    assert names == ["states", "energies", "steps", "converged"]
    assert final.shape == (*batch, 24)
    assert res.energies.dtype == F64 and res.energies.dim() == 1 + len(batch)
    assert res.energies.shape[1:] == batch and res.energies.shape[0] >= 2
    assert res.steps.dtype == torch.int64 and res.steps.shape == batch and (res.steps >= 1).all()
    assert res.converged.dtype == torch.bool and res.converged.shape == batch and res.converged.all()
    assert res.times.shape == (res.energies.shape[0],) and res.times[0] == 0 and (res.times.diff() > 0).all()
    torch.testing.assert_close(res.energy, res.energies[-1])
    assert (res.energies.diff(dim=0) <= 1e-9).all()  # every loop lowers its energy
    with pytest.raises(dataclasses.FrozenInstanceError):
        res.steps = res.steps  # results are values: nothing changes them after the return


def test_discrete_loops_record_one_row_per_step_and_stop_each_sample_on_its_own():
    xi = torch.sign(torch.randn(6, 32, dtype=F64))
    cues = torch.cat([xi[:1], xi[1:3] * torch.where(torch.rand(2, 32, dtype=F64) < 0.2, -1.0, 1.0)])
    res = am.retrieve(xi, cues, 0.3, steps=None, tol=1e-9, max_steps=100, record=True)
    assert res.energies.shape == (int(res.steps.max()) + 1, 3)
    rec = BinaryDAM(xi, F="power", n=3).recall(cues, record=True)
    assert rec.energies.shape == (int(rec.steps.max()) + 1, 3)
    assert rec.steps[0] == 1  # a stored pattern: the first sweep changes nothing
    assert am.retrieve(xi, cues, 0.3).dim() == 2  # without record or weights, retrieve answers the states


def test_retrieve_returns_weights_nothing_changes_afterwards():
    xi, q = torch.randn(9, 4, dtype=F64), torch.randn(3, 4, dtype=F64)
    res = am.retrieve(xi, q, 2.0, steps=4, tol=1e-3, return_weights=True, record=True)
    kept = res.weights.clone()
    again = am.retrieve(xi, q, 2.0, steps=4, tol=1e-3, return_weights=True, record=True)
    assert torch.equal(res.weights, kept) and res.weights.data_ptr() != again.weights.data_ptr()
    torch.testing.assert_close(res.weights @ xi, res.states, atol=1e-3, rtol=0)  # within tol of the output
    assert res.weights.shape == (3, 9)


def test_layer_retrieve_makes_a_new_result_and_energy_runs_no_update(monkeypatch):
    y, r = torch.randn(2, 9, 5, dtype=F64), torch.randn(2, 4, 5, dtype=F64)
    static = dict(normalize_stored_pattern=False, normalize_stored_pattern_affine=False,
                  normalize_state_pattern=False, normalize_state_pattern_affine=False,
                  normalize_pattern_projection=False, normalize_pattern_projection_affine=False,
                  stored_pattern_as_static=True, state_pattern_as_static=True, pattern_projection_as_static=True,
                  disable_out_projection=True)  # fmt: skip
    layer = Hopfield(scaling=1.7, update_steps_max=6, update_steps_eps=1e-300, **static)
    out, assoc = layer.associate((y, r, y), record=True)
    core_output = assoc.output.clone()
    res = layer.retrieve((y, r, y))
    assert torch.equal(assoc.output, core_output) and res is not assoc  # the first result is untouched
    torch.testing.assert_close(res.output, out)
    with pytest.raises(dataclasses.FrozenInstanceError):
        assoc.output = out
    from assocmem.engines import association, online_softmax

    calls = []
    real = online_softmax.stream
    monkeypatch.setattr(association, "stream", lambda *a, **k: calls.append(1) or real(*a, **k))
    e = layer.energy((y, r, y))
    assert len(calls) == 1  # one log-partition, not six updates and a read-out
    torch.testing.assert_close(e, res.energies[0])
