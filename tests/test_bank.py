"""MemoryBank on the local backend: it computes what ``retrieve`` computes (float64), with every storage type,
values, masks, gradients, add and remove by id, and its files (checksums, atomic, rows read by range)."""

from __future__ import annotations

import json

import pytest
import torch

import assocmem as am
from assocmem.engines.bank import MemoryBank, read_rows

D = torch.float64


def bank_data(k=300, d=12, dv=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    xi = torch.randn(k, d, generator=g, dtype=D)
    v = torch.randn(k, dv, generator=g, dtype=D)
    q = xi[:6] + 0.2 * torch.randn(6, d, generator=g, dtype=D)
    return xi, v, q


@pytest.mark.parametrize("steps", [1, 3, None])
@pytest.mark.parametrize("with_values", [False, True])
def test_the_local_bank_equals_retrieve(steps, with_values):
    xi, v, q = bank_data()
    values = v if with_values else None
    bank = MemoryBank(xi, values)
    got = bank.retrieve(q, 1.5, steps=steps, record=True, tol=1e-9 if steps is None else None)
    ref = am.retrieve(
        xi, q, 1.5, steps=steps, values=values, record=True, tol=1e-9 if steps is None else None
    )
    torch.testing.assert_close(got.states, ref.states, rtol=0, atol=1e-12)
    torch.testing.assert_close(got.energies, ref.energies, rtol=0, atol=1e-12)
    assert torch.equal(got.steps, ref.steps) and torch.equal(got.converged, ref.converged)
    assert got.bound is None and got.fallback is None


def test_masks_and_per_query_beta_follow_retrieve():
    xi, v, q = bank_data()
    g = torch.Generator().manual_seed(1)
    mask = torch.rand(q.shape[0], xi.shape[0], generator=g) < 0.7
    beta = torch.linspace(0.5, 3.0, q.shape[0], dtype=D)[:, None]
    got = MemoryBank(xi, v).retrieve(q, beta, steps=2, mask=mask)
    ref = am.retrieve(xi, q, beta, steps=2, values=v, mask=mask)
    torch.testing.assert_close(got, ref, rtol=0, atol=1e-12)
    e = MemoryBank(xi).energy(q, 2.0, mask=mask)
    torch.testing.assert_close(e, am.engines.retrieval.energy(xi, q, 2.0, mask=mask), rtol=0, atol=1e-12)


@pytest.mark.parametrize("storage", ["float16", "int8"])
def test_stored_rows_are_rescored_exactly(storage):
    """float16 and int8 round the rows once; every score after that is exact on the rounded rows."""
    xi, v, q = bank_data(k=70000)  # more than one block of rows
    bank = MemoryBank(xi.float(), v.float(), storage=storage)
    stored = bank.backend.patterns.block(0, len(bank), D)
    stored_v = bank.backend.values.block(0, len(bank), D)
    assert (stored - xi).abs().max() < (0.01 if storage == "float16" else 0.05) * xi.abs().max()
    got = bank.retrieve(q, 2.0, steps=2)  # float64 queries: computed in float64 on the stored rows
    ref = am.retrieve(stored, q, 2.0, steps=2, values=stored_v)
    torch.testing.assert_close(got, ref, rtol=0, atol=1e-12)
    got32 = bank.retrieve(q.float(), 2.0, steps=2)
    torch.testing.assert_close(got32, ref.float(), rtol=0, atol=1e-5)
    per_row = bank.backend.patterns.nbytes / len(bank)
    assert per_row == {"float16": 2 * 12, "int8": 12 + 4}[storage]


def test_gradients_flow_to_queries_patterns_values_and_beta():
    xi, v, q = bank_data(k=40, d=6, dv=3)
    xi, v, q = (t.clone().requires_grad_() for t in (xi, v, q))
    beta = torch.tensor(1.3, dtype=D, requires_grad=True)
    got = MemoryBank(xi, v).retrieve(q, beta, steps=2)
    grads = torch.autograd.grad(got.square().sum(), (q, xi, v, beta))
    ref = am.retrieve(xi, q, beta.reshape(1, 1), steps=2, values=v)
    expected = torch.autograd.grad(ref.square().sum(), (q, xi, v, beta))
    for a, b in zip(grads, expected, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_add_and_remove_by_id():
    xi, v, q = bank_data()
    bank = MemoryBank(xi[:100], v[:100])
    new = bank.add(xi[100:], v[100:])
    assert new.tolist() == list(range(100, 300)) and len(bank) == 300
    bank.remove(torch.arange(0, 300, 3))
    keep = torch.arange(300) % 3 != 0
    assert bank.ids.tolist() == torch.arange(300)[keep].tolist()
    ref = am.retrieve(xi[keep], q, 2.0, steps=2, values=v[keep])
    torch.testing.assert_close(bank.retrieve(q, 2.0, steps=2), ref, rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="ids not in the bank"):
        bank.remove(torch.tensor([0]))
    with pytest.raises(ValueError, match="ids must be distinct"):
        bank.add(xi[:1], v[:1], ids=torch.tensor([1]))
    with pytest.raises(ValueError, match="values are required"):
        bank.add(xi[:1])


def test_save_and_load_round_trip_with_checksums(tmp_path):
    xi, v, q = bank_data()
    bank = MemoryBank(xi.float(), v.float(), storage="int8", ids=torch.arange(300) * 7)
    path = bank.save(tmp_path / "bank", shard_rows=128)
    manifest = json.loads((path / "manifest.json").read_text())
    assert [s["lo"] for s in manifest["shards"]] == [0, 128, 256] and manifest["storage"] == "int8"
    back = MemoryBank.load(path)
    assert torch.equal(back.ids, bank.ids) and back.storage == "int8"
    torch.testing.assert_close(back.retrieve(q.float(), 2.0), bank.retrieve(q.float(), 2.0), rtol=0, atol=0)
    ids, rows, values = read_rows(path, 100, 140)
    assert torch.equal(ids, bank.ids[100:140]) and rows.dtype == torch.float32
    torch.testing.assert_close(rows, bank.backend.patterns.block(100, 140, torch.float32), rtol=0, atol=0)
    assert values.shape == (40, 5)
    bank.save(path)  # over an existing bank: replaced whole
    assert len(json.loads((path / "manifest.json").read_text())["shards"]) == 1
    shard = path / "rows-00000.safetensors"
    data = bytearray(shard.read_bytes())
    data[-1] ^= 0xFF
    shard.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"rows-00000\.safetensors: checksum mismatch"):
        MemoryBank.load(path)
    with pytest.raises(ValueError, match="not a saved bank"):
        MemoryBank.load(tmp_path)


def test_a_bank_is_an_engine_of_model_b():
    """The engine x preset table's claim for the bank: its energy is the reduced model B network's."""
    xi, _, q = bank_data(k=20, d=5)
    net = am.models.model_b(xi, 2.0, reduced=True)
    assert torch.allclose(MemoryBank(xi).energy(q, 2.0), net.energy({"v": q}), atol=1e-12)
