"""Rows of the bad-input table (tests/test_bad_input.py) for the explanations of assocmem.repertoire: weights and
rankings, motif recovery, integrated gradients and the figures. The ``explain`` command has its rows in
tests/test_cli_bad_input.py."""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch

from assocmem.repertoire import (
    BagExplanation,
    Motif,
    RecoveredMotif,
    attribute_bag,
    explain_bag,
    integrated_gradients,
    logo_figure,
    motif_in_top,
    recover_motif,
    roc_figure,
    weights_table,
    witness_figure,
    write_weights,
)
from tests.bad_input_cases import INF, NAN, Bad, meta, poke
from tests.repertoire_standin import StandIn, make_bags

BAG = make_bags(1, 8, 2, "SA/S", seed=0)[0]
PLAIN = make_bags(1, 8, 0, "SA/S", seed=1, positive=False)[0]
W = torch.softmax(torch.randn(2, 8, generator=torch.Generator().manual_seed(0)), 1)
E = BagExplanation(BAG, 0.5, W)
MODEL = StandIn()
MOTIF = Motif.parse("SA/S")
X = torch.randn(3, 4, dtype=torch.float64)
INDEX = torch.tensor([0, 2])
SCORES, LABELS = torch.tensor([0.1, 0.7, 0.3, 0.9]), torch.tensor([0, 1, 0, 1])
FOLDER = Path(tempfile.gettempdir())
CHECKED = "no tensor input: the weights were checked when the BagExplanation was made (its row)"
INDICES = "integer indices: no NaN or Inf exists"
MADE = "takes a RecoveredMotif, made and checked by recover_motif (its row)"


def broken(value: float) -> StandIn:
    model = StandIn()
    with torch.no_grad():
        model.queries[0, 0] = value
    return model


class MaxPooling(StandIn):
    pooling = "max"

    def forward(self, bag):
        out = super().forward(bag)
        out.weights = None
        return out


def explanation(weights: torch.Tensor, bag=BAG, logit: object = 0.5) -> BagExplanation:
    return BagExplanation(bag, logit, weights)


def square(p: torch.Tensor) -> torch.Tensor:
    return (p**2).flatten(1).sum(1)


def method_rows(method: str, option: Bad) -> dict:
    return {
        "nan": CHECKED,
        "inf": CHECKED,
        "last_dim": CHECKED,
        "rank": CHECKED,
        "empty": "a BagExplanation holds at least one sequence (a Repertoire is never empty)",
        "dtype": CHECKED,
        "meta": CHECKED,
        "option": option,
    }


def list_rows(f, option: Bad, *extra: object) -> dict:
    """A function of a list of explanations: bad lists and one bad option."""
    return {
        "nan": CHECKED,
        "inf": CHECKED,
        "last_dim": "takes whole explanations: each one's shapes were checked when it was made",
        "rank": Bad(lambda: f(E, *extra), "list of BagExplanation"),
        "empty": Bad(lambda: f([], *extra), "empty"),
        "dtype": Bad(lambda: f([W], *extra), r"explanations\[0\]"),
        "meta": CHECKED,
        "option": option,
    }


TABLE: dict[str, dict[str, Bad | str]] = {
    "BagExplanation": {
        "nan": Bad(lambda: explanation(poke(W, NAN)), "weights"),
        "inf": Bad(lambda: explanation(poke(W, INF)), "weights"),
        "last_dim": Bad(lambda: explanation(W[:, :5]), r"weights must be \(heads, 8\)"),
        "rank": Bad(lambda: explanation(W[0]), "weights"),
        "empty": Bad(lambda: explanation(W[:0]), "weights"),
        "dtype": Bad(lambda: explanation(W.long()), "weights"),
        "meta": Bad(lambda: explanation(meta(W)), "meta"),
        "option": Bad(lambda: explanation(W, logit="high"), "logit"),
    },
    "BagExplanation.order": method_rows("order", Bad(lambda: E.order(2), "head")),
    "BagExplanation.ranks": method_rows("ranks", Bad(lambda: E.ranks(-1), "head")),
    "BagExplanation.top": method_rows("top", Bad(lambda: E.top(0), "k")),
    "explain_bag": {
        "nan": Bad(lambda: explain_bag(broken(NAN), BAG), "weights"),
        "inf": Bad(lambda: explain_bag(broken(INF), BAG), "weights"),
        "last_dim": "the bag is a Repertoire, whose shapes its own row checks",
        "rank": Bad(lambda: explain_bag(MODEL, [BAG]), "bag"),
        "empty": "a Repertoire holds at least one sequence (its row)",
        "dtype": Bad(lambda: explain_bag(MODEL, BAG.codes), "bag"),
        "meta": "a Repertoire refuses meta tensors (its row)",
        "option": Bad(lambda: explain_bag(MaxPooling(), BAG), "pools by 'max'"),
    },
    "weights_table": {
        **method_rows("weights_table", Bad(lambda: weights_table(BAG), "explanation")),
        "dtype": Bad(lambda: weights_table(W), "explanation"),
    },
    "write_weights": {
        **method_rows("write_weights", Bad(lambda: write_weights(FOLDER / "w.tsv", BAG), "explanation")),
        "dtype": Bad(lambda: write_weights(FOLDER / "w.tsv", W), "explanation"),
    },
    "motif_in_top": {
        **list_rows(motif_in_top, Bad(lambda: motif_in_top([E], MOTIF, top=0), "top"), MOTIF),
        "meta": Bad(lambda: motif_in_top([E], "SA/S"), "motif"),
    },
    "recover_motif": list_rows(recover_motif, Bad(lambda: recover_motif([E], letters=[6]), "letters")),
    "integrated_gradients": {
        "nan": Bad(lambda: integrated_gradients(square, poke(X, NAN), X), "x holds nan"),
        "inf": Bad(lambda: integrated_gradients(square, X, poke(X, INF)), "baseline holds inf"),
        "last_dim": Bad(lambda: integrated_gradients(square, X, X[:, :3]), "baseline must match x"),
        "rank": Bad(lambda: integrated_gradients(square, X, X[None]), "baseline must match x"),
        "empty": Bad(lambda: integrated_gradients(square, X[:0], X[:0]), "x is empty"),
        "dtype": Bad(lambda: integrated_gradients(square, X.long(), X.long()), "x must be a floating"),
        "meta": Bad(lambda: integrated_gradients(square, meta(X), X), "meta"),
        "option": Bad(lambda: integrated_gradients(square, X, X, rule="simpson"), "rule"),
    },
    "attribute_bag": {
        "nan": INDICES,
        "inf": INDICES,
        "last_dim": Bad(lambda: attribute_bag(MODEL, BAG, torch.tensor([0, 8])), "sequences must index"),
        "rank": Bad(lambda: attribute_bag(MODEL, BAG, INDEX[None]), "sequences"),
        "empty": Bad(lambda: attribute_bag(MODEL, BAG, INDEX[:0]), "sequences"),
        "dtype": Bad(lambda: attribute_bag(MODEL, BAG, INDEX.double()), "sequences"),
        "meta": Bad(lambda: attribute_bag(MODEL, BAG, meta(INDEX)), "meta"),
        "option": Bad(lambda: attribute_bag(MODEL, BAG, INDEX, baseline="ones"), "baseline"),
    },
    "roc_figure": {
        "nan": Bad(lambda: roc_figure({"m": (poke(SCORES, NAN), LABELS)}, FOLDER / "r.png"), "scores"),
        "inf": Bad(lambda: roc_figure({"m": (poke(SCORES, INF), LABELS)}, FOLDER / "r.png"), "scores"),
        "last_dim": Bad(lambda: roc_figure({"m": (SCORES, LABELS[:3])}, FOLDER / "r.png"), "labels"),
        "rank": Bad(lambda: roc_figure({"m": (SCORES[None], LABELS[None])}, FOLDER / "r.png"), "scores"),
        "empty": Bad(lambda: roc_figure({}, FOLDER / "r.png"), "curves"),
        "dtype": Bad(lambda: roc_figure({"m": SCORES}, FOLDER / "r.png"), r"curves\['m'\]"),
        "meta": Bad(lambda: roc_figure({"m": (meta(SCORES), LABELS)}, FOLDER / "r.png"), "meta"),
        "option": Bad(lambda: roc_figure([(SCORES, LABELS)], FOLDER / "r.png"), "curves"),
    },
    "witness_figure": list_rows(
        witness_figure,
        Bad(lambda: witness_figure([explanation(W[:1], PLAIN)], FOLDER / "w.png"), "witnesses"),
        FOLDER / "w.png",
    ),
    "logo_figure": {
        "nan": MADE,
        "inf": MADE,
        "last_dim": MADE,
        "rank": MADE,
        "empty": Bad(
            lambda: logo_figure(
                RecoveredMotif("", False, 0.0, 0, 1, 0, 1, 1, torch.zeros(0, 20), 0), FOLDER / "l.png"
            ),
            "no aligned positions",
        ),
        "dtype": Bad(lambda: logo_figure("SA/S", FOLDER / "l.png"), "RecoveredMotif"),
        "meta": MADE,
        "option": MADE,
    },
}

#: Public names of the explanations that take no tensor, with the reason.
NO_TENSOR_INPUT: dict[str, str] = {
    "MotifRate": "a result: holds numbers, takes none",
    "MotifRate.to_dict": "no input",
    "RecoveredMotif": "a result: holds the recovered motif, made by recover_motif",
    "RecoveredMotif.to_dict": "no input",
    "Attribution": "a result: holds tensors, takes none",
}
