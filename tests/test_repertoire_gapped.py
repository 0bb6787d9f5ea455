"""Gapped k-mers (docs/repertoire.md, "Gapped k-mers at 0.01%"): the ids and counts against a plain-Python reference
on small sequences, the embedding against its definition (float64, per window), chunked and recomputed equal to
whole (values and gradients), a gapped motif found by its own feature, the k-mer regression on gapped features,
and the recipe's new keys refused by name."""

from __future__ import annotations

import random
from itertools import combinations

import pytest
import torch

from assocmem.repertoire import RepertoireClassifier, RepertoireConfig, encode, kmer_baseline
from assocmem.repertoire.alphabet import AMINO_ACIDS
from assocmem.repertoire.embedding import embed_chunks
from assocmem.repertoire.gapped import (
    GappedEmbedding,
    feature_count,
    gapped_counts,
    gapped_ids,
    gapped_patterns,
    pattern_name,
)
from assocmem.repertoire.motif import Motif


def random_sequences(n: int, seed: int, longest: int = 12) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice(AMINO_ACIDS) for _ in range(rng.randint(1, longest))) for _ in range(n)]


def reference_features(sequence: str, span: int, letters: int) -> list[tuple[tuple[int, ...], str, int]]:
    """Every (pattern, letters, start) of ``sequence``, by loops over the definition."""
    out = []
    for m in range(2, letters + 1):
        for rest in combinations(range(1, span), m - 1):
            p = (0, *rest)
            for s in range(len(sequence) - p[-1]):
                out.append((p, "".join(sequence[s + o] for o in p), s))
    return out


def reference_id(pattern: tuple[int, ...], word: str, span: int, letters: int) -> int:
    """The id by the module docstring's layout: the patterns' ids in order, shortest first, Horner inside each."""
    base = 0
    for p in gapped_patterns(span, letters):
        if p == pattern:
            index = 0
            for ch in word:
                index = 20 * index + AMINO_ACIDS.index(ch)
            return base + index
        base += 20 ** len(p)
    raise AssertionError(pattern)


def test_patterns_are_every_offset_set_within_the_span():
    assert gapped_patterns(5, 3)[:4] == ((0, 1), (0, 2), (0, 3), (0, 4))
    assert len(gapped_patterns(5, 3)) == 4 + 6 and feature_count(gapped_patterns(5, 3)) == 4 * 400 + 6 * 8000
    assert len(gapped_patterns(5, 4)) == 4 + 6 + 4
    assert pattern_name((0, 1, 3), "DWH") == "DW/H" and pattern_name((0, 4), "RH") == "R///H"


@pytest.mark.parametrize(("span", "letters"), [(2, 2), (4, 3), (5, 3), (5, 4)])
def test_ids_and_counts_equal_a_plain_python_reference(span, letters):
    sequences = random_sequences(30, seed=span * 10 + letters)
    codes, lengths = encode(sequences)
    patterns = gapped_patterns(span, letters)
    pad = feature_count(patterns)
    ids = gapped_ids(codes, lengths, patterns)
    for i, s in enumerate(sequences):
        want = sorted(reference_id(p, w, span, letters) for p, w, _ in reference_features(s, span, letters))
        got = sorted(int(v) for v in ids[i] if v != pad)
        assert got == want, s
    counts = torch.randint(1, 9, (len(sequences),))
    expected = torch.zeros(pad, dtype=torch.float64)
    for i, s in enumerate(sequences):
        for p, w, _ in reference_features(s, span, letters):
            expected[reference_id(p, w, span, letters)] += int(counts[i])
    weighted = gapped_counts(codes, lengths, counts, span=span, letters=letters)
    torch.testing.assert_close(weighted, expected, rtol=0, atol=0)
    unweighted = gapped_counts(codes, lengths, span=span, letters=letters)
    assert int(unweighted.sum()) == sum(len(reference_features(s, span, letters)) for s in sequences)


def test_embedding_equals_its_definition_per_window():
    """``h = max over starts s < max(l - 1, 1) of selu(b + sum_p E[f_p(s)])``, f_p(s) only where the pattern fits in
    the sequence, by loops in float64."""
    span, letters = 4, 3
    torch.manual_seed(0)
    emb = GappedEmbedding(6, span, letters).double()
    emb.reset_parameters(torch.Generator().manual_seed(1))
    with torch.no_grad():
        emb.bias.normal_()
    sequences = ["CASSRDWAHF", "CA", "RDW", "CASRDWYH", "C"]
    codes, lengths = encode(sequences)
    got = emb.from_codes(codes, lengths, torch.float64)
    table = emb.table.weight
    for i, s in enumerate(sequences):
        responses = []
        for start in range(max(len(s) - 1, 1)):
            total = emb.bias.clone()
            for p, w, at in reference_features(s, span, letters):
                if at == start:
                    total = total + table[reference_id(p, w, span, letters)]
            responses.append(torch.nn.functional.selu(total))
        torch.testing.assert_close(got[i], torch.stack(responses).amax(0), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("chunk", [3, 1000])
def test_chunked_recomputed_embedding_equals_whole_values_and_gradients(chunk):
    codes, lengths = encode(random_sequences(40, seed=5, longest=16))
    emb = GappedEmbedding(5, 5, 3).double()
    emb.reset_parameters(torch.Generator().manual_seed(0))
    weights = torch.randn(40, 5, dtype=torch.float64)
    whole = emb.from_codes(codes, lengths, torch.float64)
    (whole * weights).sum().backward()
    want = emb.table.weight.grad.clone()
    emb.zero_grad()
    parts = embed_chunks(emb, codes, lengths, chunk, torch.float64)
    (parts * weights).sum().backward()
    torch.testing.assert_close(parts, whole, rtol=0, atol=0)
    torch.testing.assert_close(emb.table.weight.grad, want, rtol=1e-12, atol=1e-14)
    assert float(emb.table.weight.grad[emb.features].abs().sum()) == 0.0, "the padding row never learns"


def test_a_gapped_motif_is_found_by_its_own_feature():
    """Planting ``DW/H`` in some sequences raises exactly its feature's count by the number planted (Motif.occurs
    counts the same sequences), and the feature's weight can single them out: an embedding whose only non-zero
    entry is that feature's vector is positive on exactly the sequences that hold the motif, wherever it lies (the
    end of a sequence included)."""
    motif = Motif.parse("DW/H")
    rng = random.Random(3)
    plain = [s for s in random_sequences(200, seed=7, longest=14) if not motif.matches(s)]
    planted = []
    for j, s in enumerate(plain[:25]):
        at = len(s) if j < 5 else rng.randint(0, len(s))  # the first five at the very end
        planted.append(s[:at] + "DW" + rng.choice(AMINO_ACIDS) + "H" + s[at:])
    sequences = planted + plain[25:]
    codes, lengths = encode(sequences)
    holds = motif.occurs(codes, lengths)
    assert int(holds.sum()) == len(planted)
    index = reference_id((0, 1, 3), "DWH", 5, 3)
    assert int(gapped_counts(codes, lengths)[index]) == 25
    emb = GappedEmbedding(1, 5, 3, activation="relu").double()
    with torch.no_grad():
        emb.table.weight.zero_()
        emb.table.weight[index] = 1.0
    h = emb.from_codes(codes, lengths, torch.float64)[:, 0]
    assert torch.equal(h > 0, holds)


def test_classifier_with_the_gapped_embedding_trains_and_refuses_one_hot():
    config = RepertoireConfig(embedding="gapped", dim=4, span=4, letters=3, heads=2, hidden=4, chunk=7)
    model = RepertoireClassifier(config, torch.Generator().manual_seed(0))
    codes, lengths = encode(random_sequences(30, seed=2))
    out = model.classify(codes, lengths)
    out.logit.backward()
    assert out.weights.shape == (2, 30) and model.embedding.table.weight.grad.abs().sum() > 0
    again = RepertoireClassifier(config, torch.Generator().manual_seed(0))
    assert torch.equal(again.embedding.table.weight, model.embedding.table.weight), "drawn from the generator"
    with pytest.raises(ValueError, match="integrated gradients need embedding 'conv'"):
        model.embed_onehot(torch.zeros(2, 3, 20), torch.tensor([3, 2]))


@pytest.mark.parametrize(
    ("settings", "names"),
    [
        ({"embedding": "lstm"}, "embedding"),
        ({"span": 1}, "span"),
        ({"letters": 1}, "letters"),
        ({"letters": 4, "span": 3}, "letters must be at most span"),
        ({"letters": 5, "span": 6}, "letters must be at most span and at most 4"),
    ],
)
def test_bad_gapped_recipes_are_refused_by_name(settings, names):
    with pytest.raises(ValueError, match=names):
        RepertoireConfig.from_dict(settings, "recipe.json")


def test_kmer_baseline_on_gapped_features_finds_a_gapped_motif(tmp_path):
    from assocmem.repertoire.simulate import simulate

    ds = simulate(tmp_path / "d", bags=40, bag_size=300, witness_rate=0.05, motif="RD/H", seed=1)
    split = ds.split(seed=0)
    result = kmer_baseline(ds, split, k=3, span=4)
    assert result.span == 4 and result.to_dict()["span"] == 4
    assert result.test_auc > 0.9, "5% witnesses of a gapped 3-mer are its own feature"
    for bad, match in ((1, "span must be an integer >= 2"), (True, "span must be"), (2.5, "span must be")):
        with pytest.raises(ValueError, match=match):
            kmer_baseline(ds, split, k=2, span=bad)
    with pytest.raises(ValueError, match=r"letters must be an integer in \[2, 3\]"):
        kmer_baseline(ds, split, k=4, span=3)


def test_a_gapped_run_trains_and_is_explained_without_attributions(tmp_path, capsys):
    """The recipe file loads (the balanced attention recipe with the embedding changed), a gapped run trains and
    loads back from the run folder, and ``explain`` refuses integrated gradients by name but explains the weights."""
    from pathlib import Path

    from assocmem.cli import main
    from assocmem.repertoire.run import load_run, load_split, train
    from assocmem.repertoire.simulate import simulate

    recipes = Path(__file__).resolve().parents[1] / "recipes" / "repertoire"
    gapped = RepertoireConfig.load(recipes / "attention-gapped.json").to_dict()
    balanced = RepertoireConfig.load(recipes / "attention-balanced.json").to_dict()
    assert gapped["embedding"] == "gapped" and balanced["embedding"] == "conv"
    assert {k for k in gapped if gapped[k] != balanced[k]} == {"embedding"}
    data = simulate(tmp_path / "sim", bags=10, bag_size=200, witness_rate=0.02, seed=3).folder
    config = RepertoireConfig(embedding="gapped", dim=4, span=4, heads=2, hidden=4, epochs=1, seed=0)
    bags, record = load_split(data, config.seed)
    train(config, bags, tmp_path / "run", data=record)
    run = load_run(tmp_path / "run")
    assert run.config.embedding == "gapped" and run.epoch == 1
    argv = ["repertoire", "explain", str(tmp_path / "run"), "--data", str(data), "--quiet"]
    assert main([*argv, "--out", str(tmp_path / "e1")]) == 2
    assert "argument --attribute" in capsys.readouterr().err
    assert main([*argv, "--out", str(tmp_path / "e2"), "--attribute", "0"]) == 0
