"""Repertoire training runs (docs/repertoire.md, "Training"): a run stopped mid-epoch or killed with SIGKILL resumes
to bit-identical weights, the selected epoch is the best validation AUC, metrics.json records every epoch with its
provenance, and the command trains and evaluates."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

from assocmem.cli import main
from assocmem.repertoire.config import RepertoireConfig
from assocmem.repertoire.run import CHECKPOINT, METRICS, load_run, load_split, train
from assocmem.repertoire.simulate import simulate

TINY = {
    "dim": 4,
    "kernel": 3,
    "heads": 2,
    "hidden": 4,
    "epochs": 3,
    "bags_per_step": 2,
    "chunk": 16,
    "lr": 0.01,
}


class StopError(Exception):
    pass


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("repertoire") / "sim"
    simulate(folder, bags=12, bag_size=(30, 60), witness_rate=0.1, seed=0)
    return folder


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def identical(a, b) -> bool:
    x, y = load_file(a / CHECKPOINT), load_file(b / CHECKPOINT)
    return x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)


@pytest.mark.parametrize("pooling", ["attention", "max"])
def test_a_run_stopped_mid_epoch_resumes_bit_for_bit(pooling, data, tmp_path, one_thread):
    config = RepertoireConfig(pooling=pooling, subsample=40, **TINY)
    bags, record = load_split(data, config.seed)
    whole = train(config, bags, tmp_path / "whole", data=record)
    calls = 0

    def stop(step: int, steps: int, loss: float) -> None:
        nonlocal calls
        calls += 1
        if calls == 6:  # the second step of the second epoch (8 training bags, 2 a step)
            raise StopError

    with pytest.raises(StopError):
        train(config, bags, tmp_path / "stopped", on_step=stop)
    assert load_run(tmp_path / "stopped").epoch == 1
    train(config, bags, tmp_path / "stopped", resume=True)
    assert identical(tmp_path / "whole", tmp_path / "stopped")
    m = json.loads((tmp_path / "whole" / METRICS).read_text())
    assert m["epochs_done"] == 3 and m["done"] and len(m["per_epoch"]) == 3
    assert {"loss", "validation_auc", "test_auc", "sequences_per_second"} <= set(m["per_epoch"][0])
    assert m["provenance"]["torch"] and m["data"]["folder"] == str(data)
    best = max(r["validation_auc"] for r in m["per_epoch"])
    assert m["selected_epoch"] == next(r["epoch"] for r in m["per_epoch"] if r["validation_auc"] == best)
    assert whole.best_epoch == m["selected_epoch"]


WORKER = """
import sys, torch
torch.set_num_threads(1)
from assocmem.repertoire.config import RepertoireConfig
from assocmem.repertoire.run import load_split, train
config = RepertoireConfig.load(sys.argv[1])
bags, _ = load_split(sys.argv[2], config.seed)
print("training", flush=True)
train(config, bags, sys.argv[3])
"""


def test_a_run_killed_with_sigkill_resumes_bit_for_bit(data, tmp_path, one_thread):
    recipe = tmp_path / "tiny.json"
    recipe.write_text(json.dumps(TINY | {"epochs": 4}))
    config = RepertoireConfig.load(recipe)
    bags, _ = load_split(data, config.seed)
    begun = time.perf_counter()
    train(config, bags, tmp_path / "whole")
    seconds = time.perf_counter() - begun
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "OMP_NUM_THREADS": "1"}
    folder = tmp_path / "killed"
    worker = subprocess.Popen(
        [sys.executable, "-c", WORKER, str(recipe), str(data), str(folder)], stdout=subprocess.PIPE, env=env
    )
    assert worker.stdout.readline() == b"training\n"
    moment = random.Random().uniform(0.3, 0.8) * seconds
    time.sleep(moment)
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    started = (folder / CHECKPOINT).exists() or (folder / "config.json").exists()
    train(config, bags, folder, resume=started)
    assert identical(tmp_path / "whole", folder), (
        f"killed at {moment:.2f} s of a {seconds:.2f} s run: differs"
    )


def test_the_command_trains_resumes_and_evaluates(data, tmp_path, capsys):
    recipe = tmp_path / "r.json"
    recipe.write_text(json.dumps(TINY | {"epochs": 1, "pooling": "mean", "abundance": True}))
    out = tmp_path / "run"
    argv = [
        "repertoire",
        "train",
        str(recipe),
        "--data",
        str(data),
        "--out",
        str(out),
        "--quiet",
        "--threads",
        "1",
    ]
    assert main(argv) == 0
    assert main(argv) == 2  # the folder holds a run: --resume or another folder
    assert "--resume" in capsys.readouterr().err
    assert main([*argv, "--resume", "--epochs", "2"]) == 0
    assert json.loads((out / METRICS).read_text())["epochs_done"] == 2
    assert (
        main(
            [
                "repertoire",
                "eval",
                str(out),
                "--data",
                str(data),
                "--out",
                str(tmp_path / "e.json"),
                "--quiet",
            ]
        )
        == 0
    )
    result = json.loads((tmp_path / "e.json").read_text())
    assert 0.0 <= result["test_auc"] <= 1.0 and result["provenance"]["torch"]
    other = tmp_path / "other.json"
    other.write_text(json.dumps(TINY | {"epochs": 3, "pooling": "max"}))
    assert (
        main(
            ["repertoire", "train", str(other), "--data", str(data), "--out", str(out), "--resume", "--quiet"]
        )
        == 2
    )
    assert "pooling" in capsys.readouterr().err
