"""The repertoire package's building blocks: amino-acid codes, the bag, motifs and the ROC metrics."""

from __future__ import annotations

import itertools
import random

import pytest
import torch

from assocmem.repertoire import AMINO_ACIDS, PAD, Motif, Repertoire, decode, encode, roc_auc, roc_curve


def random_sequences(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choices(AMINO_ACIDS, k=rng.randint(1, 12))) for _ in range(n)]


def test_encode_decode_round_trip_and_padding():
    seqs = random_sequences(50)
    codes, lengths = encode(seqs)
    assert codes.dtype == torch.uint8 and lengths.dtype == torch.int64
    assert codes.shape == (50, max(map(len, seqs)))
    assert lengths.tolist() == [len(s) for s in seqs]
    for row, s in zip(codes, seqs, strict=True):
        assert [AMINO_ACIDS[c] for c in row[: len(s)]] == list(s)
        assert (row[len(s) :] == PAD).all()
    assert decode(codes, lengths) == seqs


@pytest.mark.parametrize(
    ("seqs", "message"),
    [
        (["CASS", "CAsF"], r"sequences\[1\] has 's' at position 2"),
        (["CASS", "CA*F"], r"sequences\[1\] has '\*' at position 2"),
        (["CAÄS"], r"sequences\[0\] has 'Ä' at position 2"),
        (["CASS", "C", ""], r"sequences\[2\] is empty"),
    ],
)
def test_encode_names_the_sequence_position_and_letter(seqs, message):
    with pytest.raises(ValueError, match=message):
        encode(seqs)


def test_repertoire_checks_its_fields():
    codes, lengths = encode(["CASSF", "CAW"])
    ones = torch.ones(2, dtype=torch.int64)
    bag = Repertoire("r1", codes, lengths, ones, 1, torch.tensor([True, False]))
    assert bag.size == 2 and bag.sequences() == ["CASSF", "CAW"]
    with pytest.raises(ValueError, match="counts must be integers >= 1"):
        Repertoire("r1", codes, lengths, ones - 1, 0)
    with pytest.raises(ValueError, match="lengths must lie"):
        Repertoire("r1", codes, lengths + 3, ones, 0)
    with pytest.raises(ValueError, match="witness must be"):
        Repertoire("r1", codes, lengths, ones, 0, torch.tensor([True]))
    with pytest.raises(ValueError, match="label"):
        Repertoire("r1", codes, lengths, ones, True)
    with pytest.raises(TypeError, match="name"):
        Repertoire("", codes, lengths, ones, None)


def brute_matches(pattern: str, s: str) -> bool:
    return any(
        all(p == "/" or s[i + j] == p for j, p in enumerate(pattern))
        for i in range(len(s) - len(pattern) + 1)
    )


@pytest.mark.parametrize("pattern", ["SA/S", "G", "CA", "A//W", "LGQ"])
def test_motif_matches_and_occurs_agree_with_a_brute_force_scan(pattern):
    seqs = [*random_sequences(400, seed=1), "SAGS", "CSAWSF", "SAS", "AGGW", "LGQ"]
    motif = Motif.parse(pattern)
    expected = [brute_matches(pattern, s) for s in seqs]
    assert [motif.matches(s) for s in seqs] == expected
    assert motif.occurs(*encode(seqs)).tolist() == expected
    assert any(expected)


@pytest.mark.parametrize(
    ("pattern", "message"),
    [("/SA", "start and end"), ("SA/", "start and end"), ("", "start and end"), ("SX", "'X' at position 1")],
)
def test_motif_rejects_bad_patterns(pattern, message):
    with pytest.raises(ValueError, match=message):
        Motif.parse(pattern)


def mann_whitney(scores: list[float], labels: list[int]) -> float:
    pos = [s for s, y in zip(scores, labels, strict=True) if y == 1]
    neg = [s for s, y in zip(scores, labels, strict=True) if y == 0]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


@pytest.mark.parametrize("seed", range(5))
def test_roc_auc_is_the_mann_whitney_statistic_and_the_area_under_roc_curve(seed):
    g = torch.Generator().manual_seed(seed)
    scores = torch.randint(0, 6, (40,), generator=g).double() / 5  # many ties
    labels = torch.randint(0, 2, (40,), generator=g)
    labels[:2] = torch.tensor([0, 1])
    auc = roc_auc(scores, labels)
    assert auc == pytest.approx(mann_whitney(scores.tolist(), labels.tolist()), abs=1e-12)
    fpr, tpr = roc_curve(scores, labels)
    assert fpr[0] == tpr[0] == 0 and fpr[-1] == tpr[-1] == 1
    assert (fpr.diff() >= 0).all() and (tpr.diff() >= 0).all()
    assert float(torch.trapezoid(tpr, fpr)) == pytest.approx(auc, abs=1e-12)


def test_roc_auc_extremes():
    labels = torch.tensor([0, 0, 1, 1])
    assert roc_auc(torch.tensor([0.0, 1.0, 2.0, 3.0]), labels) == 1.0
    assert roc_auc(torch.tensor([3.0, 2.0, 1.0, 0.0]), labels) == 0.0
    assert roc_auc(torch.ones(4), labels) == 0.5
