"""``assocmem repertoire simulate`` and ``kmer`` end to end on a small data set; the k-mer counts and baseline."""

from __future__ import annotations

import json

import pytest
import torch

from assocmem.cli import main
from assocmem.repertoire import RepertoireDataset, encode, kmer_baseline, kmer_counts


def brute_kmers(seqs: list[str], k: int, weights: list[int]) -> dict[str, float]:
    out: dict[str, float] = {}
    for s, w in zip(seqs, weights, strict=True):
        for i in range(len(s) - k + 1):
            out[s[i : i + k]] = out.get(s[i : i + k], 0) + w
    return out


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_kmer_counts_agree_with_a_loop_over_windows(k):
    seqs = ["CASSLGQETQYF", "CAW", "CASSPDRGAYEQYF", "C"]
    weights = [3, 1, 2, 5]
    c = kmer_counts(*encode(seqs), torch.tensor(weights), k=k)
    expected = brute_kmers(seqs, k, weights)
    letters = "ACDEFGHIKLMNPQRSTVWY"
    got = {}
    for i in torch.nonzero(c).flatten().tolist():
        word = "".join(letters[(i // 20 ** (k - 1 - j)) % 20] for j in range(k))
        got[word] = float(c[i])
    assert got == expected


def test_simulate_then_kmer_on_the_command_line(tmp_path, capsys):
    data, run = tmp_path / "data", tmp_path / "run"
    argv = ["repertoire", "simulate", "--out", str(data), "--bags", "40", "--bag-size", "400"]
    assert main([*argv, "--witness-rate", "0.05", "--motif", "RDW/H", "--seed", "1"]) == 0
    assert "wrote 40 repertoires (20 positive)" in capsys.readouterr().out
    assert main(["repertoire", "kmer", str(data), "--out", str(run), "--k", "3", "--seed", "2"]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["model"] == "kmer" and metrics["simulation"]["motif"] == "RDW/H"
    assert metrics["test_auc"] > 0.9, "5% witnesses are easy for 3-mers"
    assert len(metrics["test_scores"]) == len(metrics["split"]["test"]) == 8
    assert "git_commit" in json.dumps(metrics["provenance"]) or metrics["provenance"]
    # simulate refuses a folder with files, before any work
    assert main([*argv, "--witness-rate", "0.05"]) == 2
    assert "not an empty folder" in capsys.readouterr().err


def test_kmer_baseline_needs_both_classes_in_every_part(tmp_path):
    from assocmem.repertoire.simulate import simulate

    ds = simulate(tmp_path / "d", bags=10, bag_size=50, witness_rate=0.1, seed=0)
    assert isinstance(ds, RepertoireDataset)
    with pytest.raises(ValueError, match="validation bags must be labelled and hold both classes"):
        kmer_baseline(ds, {"train": list(range(8)), "validation": [8], "test": [9]}, k=2)
