"""The repertoire simulator: deterministic, realistic background, witnesses where the truth says, chance matches
recorded, and a folder that appears whole or not at all."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from assocmem.repertoire import Motif, decode
from assocmem.repertoire.background import chance_rate, length_probabilities, sample_background
from assocmem.repertoire.simulate import simulate


def test_the_background_looks_like_cdr3_junctions():
    codes, lengths = sample_background(20000, np.random.default_rng(0))
    seqs = decode(torch.from_numpy(codes), torch.from_numpy(lengths))
    assert all(s[0] == "C" and s[-1] in "FW" for s in seqs)
    share = np.bincount(lengths, minlength=30) / len(lengths)
    assert share[10:21].sum() > 0.95 and int(np.argmax(share)) in (14, 15)
    assert np.mean([s.startswith("CAS") for s in seqs]) > 0.5
    expected = length_probabilities()
    for m, p in expected.items():
        assert abs(share[m] - p) < 0.01


def test_chance_rate_predicts_the_chance_matches_of_a_common_motif():
    codes, lengths = sample_background(100000, np.random.default_rng(1))
    motif = Motif.parse("SA/S")
    found = motif.occurs(torch.from_numpy(codes), torch.from_numpy(lengths)).double().mean().item()
    expected = chance_rate(list(zip(motif.offsets, motif.codes.tolist(), strict=True)), motif.span)
    assert abs(found - expected) < 5 * (expected / 100000) ** 0.5


def test_simulate_is_deterministic_and_the_truth_matches_the_bags(tmp_path):
    kw = {"bags": 8, "bag_size": (300, 500), "witness_rate": 0.01, "motif": "SA/S", "seed": 5}
    ds = simulate(tmp_path / "a", **kw)
    again = simulate(tmp_path / "b", **kw)
    other = simulate(tmp_path / "c", **{**kw, "seed": 6})
    assert len(ds) == 8 and ds.labels.sum() == 4
    for i in range(8):
        assert ds[i].sequences() == again[i].sequences()
    assert any(ds[i].sequences() != other[i].sequences() for i in range(8))
    truth = json.loads((tmp_path / "a" / "truth.json").read_text())
    assert truth["motif"] == "SA/S" and truth["settings"]["seed"] == 5
    motif = Motif.parse("SA/S")
    for i in range(8):
        bag = ds[i]
        assert 300 <= bag.size <= 500 and (bag.counts >= 1).all()
        record = truth["bags"][bag.name]
        n_witness = int(bag.witness.sum())
        assert n_witness == (max(1, round(0.01 * bag.size)) if bag.label else 0)
        assert torch.nonzero(bag.witness).flatten().tolist() == record["witness"]
        hits = motif.occurs(bag.codes, bag.lengths)
        assert hits[bag.witness].all(), "without substitution every witness contains the motif"
        assert set(record["chance"]) <= set(torch.nonzero(hits).flatten().tolist()) | set(record["witness"])
    assert truth["chance"]["found"] > 0, "SA/S is common: the background holds it by chance"


def test_substitution_breaks_some_implanted_letters(tmp_path):
    ds = simulate(
        tmp_path / "s",
        bags=2,
        bag_size=2000,
        witness_rate=0.2,
        motif="RDW/H",
        seed=0,
        positive_fraction=0.5,
        substitution=0.3,
    )
    bag = ds[0] if ds[0].label else ds[1]
    exact = Motif.parse("RDW/H").occurs(bag.codes, bag.lengths)[bag.witness].double().mean().item()
    assert 0.1 < exact < 0.5  # about 0.7**4 = 0.24 keep every letter


def test_abundances_are_heavy_tailed(tmp_path):
    ds = simulate(tmp_path / "h", bags=2, bag_size=20000, witness_rate=0.01, seed=0)
    counts = ds[0].counts.double()
    assert (counts == 1).double().mean() > 0.4 and counts.max() > 100


def test_a_failed_simulation_leaves_no_folder(tmp_path):
    def boom(_):
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        simulate(tmp_path / "x", bags=4, bag_size=50, witness_rate=0.1, seed=0, progress=boom)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"bags": 1}, "bags"),
        ({"bag_size": 0}, "bag_size"),
        ({"bag_size": (10, 5)}, "bag_size"),
        ({"witness_rate": 0.0}, "witness_rate"),
        ({"witness_rate": float("nan")}, "witness_rate"),
        ({"positive_fraction": 1.0}, "positive_fraction"),
        ({"substitution": 1.5}, "substitution"),
        ({"abundance_alpha": 0}, "abundance_alpha"),
        ({"seed": -1}, "seed"),
        ({"motif": "SX"}, "pattern"),
        ({"motif": "SASASAS"}, "spans"),
    ],
)
def test_bad_settings_are_named_before_anything_is_written(tmp_path, kw, message):
    args = {"bags": 4, "bag_size": 50, "witness_rate": 0.1, "seed": 0} | kw
    with pytest.raises(ValueError, match=message):
        simulate(tmp_path / "x", **args)
    assert list(tmp_path.iterdir()) == []


def test_an_existing_folder_with_files_is_refused(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "keep.txt").write_text("mine")
    with pytest.raises(ValueError, match="not an empty folder"):
        simulate(tmp_path / "x", bags=2, bag_size=10, witness_rate=0.1, seed=0)
    ds = simulate(tmp_path / "empty", bags=2, bag_size=10, witness_rate=0.1, seed=0)
    assert len(ds) == 2
