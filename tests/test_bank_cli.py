"""``assocmem bank build | query | info`` on small banks (docs/bank.md, "Command")."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

import assocmem as am
from assocmem.cli import main


def rows(k=400, d=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(k, d, generator=g)


def test_build_query_info_on_a_local_bank(tmp_path, capsys):
    xi, v = rows(), rows(400, 3, 1)
    np.save(tmp_path / "rows.npy", xi.numpy())
    np.save(tmp_path / "values.npy", v.numpy())
    np.save(tmp_path / "q.npy", xi[:5].numpy())
    bank = tmp_path / "bank"
    assert main(["bank", "build", str(tmp_path / "rows.npy"), "--values", str(tmp_path / "values.npy"),
                 "--out", str(bank), "--shard-rows", "150", "--quiet"]) == 0  # fmt: skip
    assert main(["bank", "query", str(bank), str(tmp_path / "q.npy"), "--beta", "3", "--steps", "2",
                 "--out", str(tmp_path / "a.safetensors"), "--quiet"]) == 0  # fmt: skip
    got = load_file(tmp_path / "a.safetensors")["states"]
    torch.testing.assert_close(got, am.retrieve(xi, xi[:5], 3.0, steps=2, values=v))
    capsys.readouterr()
    assert main(["bank", "info", str(bank), "--verify", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "400 rows, d = 8, values d_v = 3" in out and out.count("  ok") == 3 and "rows 300-400" in out
    shard = bank / "rows-00001.safetensors"
    shard.write_bytes(shard.read_bytes()[:-1] + b"x")
    assert main(["bank", "info", str(bank), "--verify", "--quiet"]) == 2
    assert "rows-00001.safetensors" in capsys.readouterr().err
    assert main(["bank", "query", str(bank), str(tmp_path / "q.npy"), "--quiet"]) == 2
    assert "checksum mismatch" in capsys.readouterr().err


def test_build_and_query_a_candidate_bank_from_safetensors(tmp_path, capsys):
    pytest.importorskip("faiss")
    xi = rows(2000, 8)
    save_file({"patterns": xi, "ids": torch.arange(2000) + 10}, tmp_path / "rows.safetensors")
    save_file({"queries": xi[:4]}, tmp_path / "q.safetensors")
    bank = tmp_path / "bank"
    assert main(["bank", "build", str(tmp_path / "rows.safetensors"), "--out", str(bank), "--backend", "candidates",
                 "--index", "ivf", "--storage", "float16", "--clusters", "20", "--quiet"]) == 0  # fmt: skip
    assert main(["bank", "info", str(bank)]) == 0
    out = capsys.readouterr().out
    assert (
        "storage float16, backend candidates" in out and "index.safetensors" in out and "clusters 20" in out
    )
    assert main(["bank", "query", str(bank), str(tmp_path / "q.safetensors"), "--beta", "20"]) == 0
    assert "queries fell back to the exact pass" in capsys.readouterr().out
