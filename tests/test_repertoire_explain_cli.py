"""``assocmem repertoire explain``: every output written, from a stand-in model and from a trained run."""

from __future__ import annotations

import argparse
import json

import pytest
import torch

from assocmem.cli.repertoire_explain import EXPLAIN, explain_bags
from assocmem.repertoire import Motif
from assocmem.repertoire.simulate import simulate
from tests.repertoire_standin import StandIn

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    folder = tmp_path_factory.mktemp("data") / "sim"
    return simulate(folder, bags=10, bag_size=300, witness_rate=0.02, seed=3)


def settings(out, **kw):
    base = dict(
        out=out, part="all", top=5, attribute=2, steps=16, baseline="zeros", quiet=True, run="r", data="d"
    )
    return argparse.Namespace(**(base | kw))


def test_explain_bags_writes_every_output(dataset, tmp_path):
    out = tmp_path / "explain"
    bags = [dataset[i] for i in range(len(dataset))]
    motif = Motif.parse(dataset.truth["motif"])
    others = {"other": StandIn(seed=1)}
    result = explain_bags(settings(out), StandIn(), others, iter(bags), len(bags), motif)
    assert json.loads((out / EXPLAIN).read_text()) == json.loads(json.dumps(result))
    assert sorted(p.stem for p in (out / "weights").iterdir()) == sorted(b.name for b in bags)
    positives = [b for b in bags if b.label == 1]
    assert result["bags"] == 10 and result["positive_bags"] == len(positives)
    assert set(result["auc"]) == {"attention", "other"}
    rate = result["motif_in_top"]
    assert rate["witness_rate"] == pytest.approx(
        sum(int(b.witness.sum()) for b in positives) / sum(b.size for b in positives)
    )
    assert result["recovered"]["foreground_size"] == 5 * len(positives)
    lines = (out / "attributions.tsv").read_text().splitlines()
    assert len(lines) == 1 + 2 * len(positives)
    assert result["attribution"]["largest_relative_completeness_gap"] < 1e-2
    for name in ("roc.png", "witness.png"):
        assert (out / name).stat().st_size > 1000 and name in result["files"]
    assert result["provenance"]["torch"] == torch.__version__
