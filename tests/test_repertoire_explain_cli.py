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
    other = StandIn(seed=1)
    others = {"other": lambda bag: float(other(bag).logit.detach())}
    result = explain_bags(settings(out), StandIn(), others, iter(bags), len(bags), motif)
    assert json.loads((out / EXPLAIN).read_text()) == json.loads(json.dumps(result))
    assert sorted(p.stem for p in (out / "weights").iterdir()) == sorted(b.name for b in bags)
    positives = [b for b in bags if b.label == 1]
    assert result["bags"] == 10 and result["positive_bags"] == len(positives)
    assert set(result["auc"]) == {"r (attention)", "other"}
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


@pytest.fixture(scope="module")
def trained(dataset, tmp_path_factory):
    """A one-epoch attention run and a k-mer baseline on the data set (their own split of seed 0)."""
    from assocmem.cli import main
    from assocmem.repertoire.config import RepertoireConfig
    from assocmem.repertoire.run import load_split, train

    folder = tmp_path_factory.mktemp("runs")
    config = RepertoireConfig(dim=8, kernel=3, heads=2, hidden=8, epochs=1, seed=0)
    bags, data = load_split(dataset.folder, config.seed)
    train(config, bags, folder / "attention", data=data)
    assert (
        main(
            ["repertoire", "kmer", str(dataset.folder), "--out", str(folder / "kmer"), "--quiet", "--k", "2"]
        )
        == 0
    )
    return folder


def test_the_command_explains_a_trained_run(dataset, trained, tmp_path, capsys):
    from assocmem.cli import main

    out = tmp_path / "explain"
    argv = [
        "repertoire",
        "explain",
        str(trained / "attention"),
        "--data",
        str(dataset.folder),
        "--out",
        str(out),
    ]
    assert main([*argv, "--compare", str(trained / "kmer"), "--steps", "8", "--threads", "1"]) == 0
    said = capsys.readouterr().out
    assert "AUC" in said and "RDW/H" in said
    result = json.loads((out / EXPLAIN).read_text())
    split = json.loads((trained / "attention" / "metrics.json").read_text())["data"]["test"]
    assert sorted(p.stem for p in (out / "weights").iterdir()) == sorted(split)  # the run's test bags
    assert set(result["auc"]) == {"attention (attention)", "kmer (k-mer)"}
    assert result["truth_motif"] == "RDW/H" and "motif_in_top" in result and "recovered" in result
    assert result["attribution"]["largest_relative_completeness_gap"] < 0.05
    assert {"roc.png", "witness.png", "attributions.tsv"} <= set(result["files"])
    assert main([*argv, "--part", "validation", "--compare", str(trained / "kmer"), "--quiet"]) == 2
    assert "use --part test" in capsys.readouterr().err
