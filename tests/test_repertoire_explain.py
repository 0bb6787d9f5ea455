"""Explanations of repertoire classifiers: weights and rankings, motif recovery, integrated gradients, figures."""

from __future__ import annotations

import math

import pytest
import torch

from assocmem.repertoire import Motif
from assocmem.repertoire.attribution import attribute_bag, integrated_gradients, path_nodes
from assocmem.repertoire.explain import (
    BagExplanation,
    explain_bag,
    motif_in_top,
    weights_table,
    write_weights,
)
from assocmem.repertoire.recovery import log_tail, pattern_text, recover_motif, shapes
from tests.repertoire_standin import StandIn, make_bags

MOTIF = "SA/S"


def favouring(bags, strength: float, seed: int) -> list[BagExplanation]:
    """Explanations whose weights favour the witnesses by ``strength`` (in logits) over noise."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for bag in bags:
        scores = strength * bag.witness.double() + torch.randn(bag.size, generator=g, dtype=torch.float64)
        out.append(BagExplanation(bag, 0.0, torch.softmax(scores, 0)[None].float()))
    return out


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def bags():
    return make_bags(12, 400, 6, MOTIF, seed=1)


# ----------------------------------------------------------------------------------------- weights and ranking
def test_ranks_order_and_table_follow_the_weights():
    bag = make_bags(1, 7, 2, MOTIF, seed=3)[0]
    weights = torch.tensor([[0.1, 0.3, 0.05, 0.2, 0.15, 0.1, 0.1], [0.4, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1]])
    e = BagExplanation(bag, 1.5, weights)
    assert e.order(0).tolist() == [1, 3, 4, 0, 5, 6, 2]  # ties: the earlier sequence first
    assert e.ranks(0).tolist() == [4, 1, 7, 2, 3, 5, 6]
    assert torch.allclose(e.combined, weights.mean(0)) and e.top(2).tolist() == e.order()[:2].tolist()
    lines = weights_table(e).splitlines()
    header = lines[0].split("\t")
    assert header[:6] == ["repertoire", "sequence", "count", "weight", "rank", "witness"]
    assert "weight_h1" in header and len(lines) == 8
    rows = [dict(zip(header, line.split("\t"), strict=True)) for line in lines[1:]]
    assert [int(r["rank"]) for r in rows] == list(range(1, 8))
    first = int(e.order()[0])
    assert rows[0]["sequence"] == bag.sequences()[first] and rows[0]["count"] == str(int(bag.counts[first]))
    assert rows[0]["witness"] == str(int(bag.witness[first]))
    with pytest.raises(ValueError, match="head"):
        e.order(2)


def test_explain_bag_keeps_the_models_weights(tmp_path):
    bag = make_bags(1, 30, 3, MOTIF, seed=4)[0]
    model = StandIn()
    e = explain_bag(model, bag)
    out = model(bag)
    assert e.weights.shape == (2, 30) and torch.allclose(e.weights.sum(1), torch.ones(2))
    assert e.logit == pytest.approx(float(out.logit.detach()))
    path = write_weights(tmp_path / "w.tsv", e)
    assert path.read_text().count("\n") == 31


# ------------------------------------------------------------------------------------------------ motif recovery
def test_shapes_and_patterns():
    assert shapes(3, 1) == [(0, 1, 2), (0, 1, 3), (0, 2, 3)]
    assert shapes(2, 2) == [(0, 1), (0, 2), (0, 3)]
    key = 15 + 0 * 20 + 15 * 400  # S, A, S
    assert pattern_text((0, 1, 3), key) == MOTIF


def test_log_tail_is_the_hypergeometric_tail():
    big_n, big_k, n = 30, 8, 10

    def pmf(i):
        return math.comb(big_k, i) * math.comb(big_n - big_k, n - i) / math.comb(big_n, n)

    for x in range(0, 9):
        exact = sum(pmf(i) for i in range(x, min(n, big_k) + 1))
        got = float(log_tail(torch.tensor([x]), torch.tensor([big_k]), n, big_n).exp())
        assert got == pytest.approx(exact, rel=1e-9, abs=1e-15)


def test_motif_is_recovered_when_the_weights_favour_witnesses(bags):
    explanations = favouring(bags, strength=4.0, seed=0)
    rate = motif_in_top(explanations, Motif.parse(MOTIF), top=5)
    assert rate.witness_rate == pytest.approx(6 / 400)
    assert rate.top_witness_rate > 0.5 and rate.top_rate > 20 * rate.witness_rate
    found = recover_motif(explanations, top=5)
    assert found.found and found.pattern == MOTIF, found
    assert found.log10_p < -10 and found.consensus == MOTIF
    info = found.information
    core = info[found.start : found.start + len(MOTIF)]
    assert core[0] > 4 and core[1] > 4 and core[3] > 4  # the motif's letters are (nearly) fixed
    assert core[2] < 4 and info[: found.start].max() < 3  # the gap and the flanks are not


def test_no_motif_is_reported_for_random_weights(bags):
    for seed in range(4):
        g = torch.Generator().manual_seed(100 + seed)
        explanations = [BagExplanation(b, 0.0, torch.rand(1, b.size, generator=g)) for b in bags]
        rate = motif_in_top(explanations, Motif.parse(MOTIF), top=5)
        assert rate.top_rate < 0.1
        found = recover_motif(explanations, top=5)
        assert not found.found, found
        assert found.log10_p > -2


def test_recovery_needs_enough_signal(bags):
    """Weights that favour the witnesses only a little: the top sequences are mostly noise, nothing is claimed."""
    weak = recover_motif(favouring(bags, strength=0.0, seed=1), top=5)
    assert not weak.found


# ------------------------------------------------------------------------------------------ integrated gradients
@pytest.mark.parametrize("rule", ["trapezoid", "riemann"])
def test_integrated_gradients_of_a_quadratic(rule):
    """f(x) = sum(c x^2) has IG_j = c_j (x_j^2 - b_j^2) exactly in the limit; the quadrature errs by O(1/m^2)."""
    g = torch.Generator().manual_seed(0)
    c, x, b = (torch.randn(5, generator=g, dtype=torch.float64) for _ in range(3))
    exact = c * (x**2 - b**2)
    errors = []
    for steps in (4, 8, 16):
        a = integrated_gradients(lambda p: (c * p**3).sum(1), x, b, steps=steps, rule=rule)
        errors.append(float((a.attributions - c * (x**3 - b**3)).abs().max()))
        assert abs(a.gap) <= 10 * errors[-1] + 1e-12
    assert errors[1] < errors[0] / 3 and errors[2] < errors[1] / 3  # second order
    a = integrated_gradients(lambda p: (c * p**2).sum(1), x, b, steps=3, rule=rule)
    assert torch.allclose(a.attributions, exact, atol=1e-12)  # exact for a quadratic (linear gradient)


def test_integrated_gradients_of_a_bag_are_complete_in_float64():
    bag = make_bags(1, 60, 4, MOTIF, seed=5)[0]
    model = StandIn()
    chosen = explain_bag(model, bag).top(3)
    for baseline in ("zeros", "uniform"):
        a = attribute_bag(model, bag, chosen, steps=64, baseline=baseline)
        assert a.attributions.shape == (3, bag.codes.shape[1], 20)
        assert a.value == pytest.approx(
            float(model(bag).logit.detach()), abs=1e-12
        )  # the rest of the bag is fixed
        assert abs(a.gap) < 1e-4 * max(1.0, abs(a.value - a.baseline_value)), a.gap
        past_end = torch.arange(bag.codes.shape[1])[None, :] >= bag.lengths[chosen][:, None]
        assert float(a.positions[past_end].abs().max()) == 0.0
    coarse = attribute_bag(model, bag, chosen, steps=4)
    fine = attribute_bag(model, bag, chosen, steps=64)
    assert abs(fine.gap) < abs(coarse.gap) / 50


def test_path_nodes_weights_sum_to_one():
    for rule in ("trapezoid", "riemann"):
        t, w = path_nodes(7, rule)
        assert float(w.sum()) == pytest.approx(1.0) and 0 <= float(t.min()) and float(t.max()) <= 1


# ------------------------------------------------------------------------------------------------------- figures
def test_figures_are_written(bags, tmp_path):
    from assocmem.repertoire.figures import logo_figure, roc_figure, witness_figure

    explanations = favouring(bags, strength=4.0, seed=0)
    negatives = favouring(make_bags(4, 100, 0, MOTIF, seed=9, positive=False), strength=0.0, seed=2)
    g = torch.Generator().manual_seed(0)
    labels = torch.tensor([1] * 10 + [0] * 10)
    curves = {
        "attention": (labels + torch.randn(20, generator=g), labels),
        "mean": (torch.randn(20, generator=g), labels),
    }
    written = [
        roc_figure(curves, tmp_path / "roc.png", "test bags"),
        witness_figure(explanations + negatives, tmp_path / "witness.png"),
        logo_figure(recover_motif(explanations, top=5), tmp_path / "logo.svg"),
    ]
    for path in written:
        assert path.is_file() and path.stat().st_size > 1000
    assert written[2].read_text().startswith("<?xml")
    assert not list(tmp_path.glob(".*.part"))  # nothing half-written
    with pytest.raises(ValueError, match="witness"):
        witness_figure(negatives, tmp_path / "none.png")


def test_tarone_counts_only_the_hypotheses_that_could_reach_significance():
    from assocmem.repertoire.recovery import tarone

    alpha = 0.01
    floors = torch.tensor([1e-9, 1e-6, 1e-3, 0.05, 0.5, 0.5]).log()
    assert tarone(floors, math.log(alpha)) == 3  # m = 2 leaves 3 floors below alpha / 2; m = 3 leaves 3
    assert tarone(torch.full((5,), 0.5).log(), math.log(alpha)) == 1  # none can reach alpha: m = 1
    assert tarone(torch.full((50,), 1e-12).log(), math.log(alpha)) == 50  # all can: Bonferroni's m


def test_integrated_gradients_through_the_repertoire_classifier():
    """The real model in float64: the value is the bag's logit (the rest of the bag fixed) and the completeness gap
    shrinks with the steps (the maximum over positions makes f only piecewise smooth: slower than 1/m^2)."""
    from assocmem.repertoire.config import RepertoireConfig
    from assocmem.repertoire.model import RepertoireClassifier

    bag = make_bags(1, 60, 4, MOTIF, seed=5)[0]
    config = RepertoireConfig(dim=8, kernel=3, heads=2, hidden=8, dtype="float64")
    model = RepertoireClassifier(config, torch.Generator().manual_seed(0))
    chosen = explain_bag(model, bag).top(3)
    coarse = attribute_bag(model, bag, chosen, steps=4)
    fine = attribute_bag(model, bag, chosen, steps=48, batch=49)
    assert fine.value == pytest.approx(float(model(bag).logit.detach()), abs=1e-12)
    assert abs(fine.gap) < abs(coarse.gap) / 5
    assert abs(fine.gap) < 0.01 * abs(fine.value - fine.baseline_value)


def test_against_negative_bags_tells_the_label_motif_from_a_general_preference():
    """Weights that favour a decoy k-mer in every bag: against the bags' own sequences it is reported (the weights
    do favour it); against the negative bags' top sequences it is not, while the witnesses' motif still is."""
    from assocmem.repertoire.recovery import recover_motif
    from tests.repertoire_standin import with_decoy

    decoy = Motif.parse("GG/K")
    positives = with_decoy(make_bags(10, 300, 5, MOTIF, seed=11), decoy.pattern, 6, seed=0)
    negatives = with_decoy(make_bags(10, 300, 0, MOTIF, seed=12, positive=False), decoy.pattern, 6, seed=1)

    def weights(bags, witness_strength, seed):
        g = torch.Generator().manual_seed(seed)
        out = []
        for bag in bags:
            scores = (
                4.0 * decoy.occurs(bag.codes, bag.lengths).double() + witness_strength * bag.witness.double()
            )
            scores += torch.randn(bag.size, generator=g, dtype=torch.float64)
            out.append(BagExplanation(bag, 0.0, torch.softmax(scores, 0)[None]))
        return out

    preference = weights(positives, 0.0, 0), weights(negatives, 0.0, 1)
    assert recover_motif(preference[0], top=5).consensus == decoy.pattern
    assert not recover_motif(preference[0], top=5, against=preference[1]).found
    both = weights(positives, 6.0, 2), weights(negatives, 6.0, 3)
    found = recover_motif(both[0], top=8, against=both[1])
    assert found.found and found.pattern == MOTIF, found
