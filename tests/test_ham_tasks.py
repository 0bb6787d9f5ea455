"""The reconstruction and masked-patch recipes run by the HAM run machinery: they learn, a run interrupted mid-epoch
(an exception, or kill -9 at random moments) resumes to bit-identical weights, the command line trains, evaluates
and writes the report page, and bad recipes are refused with the setting named (docs/ham.md, "Recipes")."""

import json
import math
import os
import random
import re
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from assocmem.cli import main
from assocmem.ham import PatchesConfig, ReconstructConfig, load_recipe, train
from assocmem.ham.data import load_images
from assocmem.ham.run import learning_rate
from tests.chromium import HOW_TO_ENABLE, Chromium, find_chromium
from tests.conftest import SHARED_DATA, needs_data

MNIST = str(SHARED_DATA / "mnist")
RECON = {
    "memories": 30,
    "epochs": 2,
    "batch_size": 50,
    "train_size": 200,
    "test_size": 100,
    "fixed_point_size": 20,
    "lr_schedule": "cosine",
}
PATCHES = {
    "dataset": "mnist",
    "dim": 8,
    "heads": 1,
    "key_dim": 4,
    "memories": 8,
    "steps": 3,
    "masked": 3,
    "epochs": 2,
    "batch_size": 32,
    "train_size": 96,
    "test_size": 32,
    "fixed_point_size": 4,
    "t_max": 50.0,
}


@pytest.fixture(scope="module")
def data():
    return load_images("mnist", data_dir=MNIST, train_size=200, test_size=100)


class KilledError(Exception):
    pass


def identical(a, b) -> bool:
    a, b = load_file(a / "checkpoint.safetensors"), load_file(b / "checkpoint.safetensors")
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@needs_data()
@pytest.mark.parametrize(
    ("config", "measure"),
    [(ReconstructConfig(**RECON), "one_step_mse"), (PatchesConfig(**PATCHES), "block_mse")],
)
def test_a_task_run_stopped_mid_epoch_resumes_bit_for_bit(config, measure, data, tmp_path, one_thread):
    whole = train(config, data, tmp_path / "whole", checkpoint_every=1)
    test = whole.history[-1]["test"]
    assert whole.history[-1]["train_loss"] < whole.history[0]["train_loss"] and test[measure] > 0
    state = {"epoch": 0}

    def kill(batch, batches, loss):
        if state["epoch"] == 1 and batch == 2:  # the second epoch, minibatch 1 checkpointed
            raise KilledError

    with pytest.raises(KilledError):
        train(
            config,
            data,
            tmp_path / "cut",
            checkpoint_every=1,
            on_batch=kill,
            on_epoch=lambda r: state.update(epoch=1),
        )
    with safe_open(tmp_path / "cut" / "checkpoint.safetensors", "pt") as f:
        assert (f.metadata()["epoch"], f.metadata()["batch"]) == ("1", "1") and "noise" in f.keys()
    resumed = train(config, data, tmp_path / "cut", resume=True)
    assert identical(tmp_path / "whole", tmp_path / "cut")
    strip = [{k: v for k, v in r.items() if "seconds" not in k} for r in resumed.history]
    assert strip == [{k: v for k, v in r.items() if "seconds" not in k} for r in whole.history]
    with pytest.raises(ValueError, match=r"lr: checkpoint 0\.0"):
        train(type(config).from_dict(config.to_dict() | {"lr": 0.5}), data, tmp_path / "cut", resume=True)


@needs_data()
@pytest.mark.parametrize("task", [ReconstructConfig, PatchesConfig])
def test_a_task_run_refuses_a_resume_that_would_stretch_its_cosine_decay(task, data, tmp_path, one_thread):
    """The cosine rate is laid over the recipe's epochs: resuming with other epochs would jump along it."""
    base = (RECON if task is ReconstructConfig else PATCHES) | {
        "lr_schedule": "cosine",
        "fixed_point_size": 0,
    }
    config = task(**(base | {"train_size": 100, "test_size": 32, "batch_size": 50}))

    def kill(batch, batches, loss):
        if batch == 2:  # after the first minibatch's checkpoint
            raise KilledError

    with pytest.raises(KilledError):
        train(config, data, tmp_path / "cut", checkpoint_every=1, on_batch=kill)
    longer = task.from_dict(config.to_dict() | {"epochs": config.epochs + 1})
    with pytest.raises(ValueError, match=f"lr_schedule='cosine' decays over epochs={config.epochs}"):
        train(longer, data, tmp_path / "cut", resume=True)
    assert train(config, data, tmp_path / "cut", resume=True).epoch == config.epochs


@needs_data()
def test_the_reconstruction_evaluation_is_a_memory_check(data, one_thread):
    run = train(ReconstructConfig(**(RECON | {"epochs": 1})), data)
    test = run.history[-1]["test"]
    for key in ("noisy_relaxation", "masked_relaxation"):
        assert test[key]["energy_non_increasing"] >= 0.95, test[key]
    spread = test["one_step_minibatch"]
    assert spread["min"] <= test["one_step_mse"] <= spread["max"] and test["relaxed"] == 20


def test_cosine_schedule_runs_from_lr_to_zero():
    config = ReconstructConfig(lr_schedule="cosine", lr=0.04)
    assert learning_rate(config, 0, 100) == 0.04 and learning_rate(config, 100, 100) == 0.0
    assert math.isclose(learning_rate(config, 50, 100), 0.02)
    assert learning_rate(ReconstructConfig(), 50, 100) == 0.04


@needs_data()
def test_cli_trains_evaluates_and_reports_a_reconstruction(tmp_path, capsys, one_thread):
    recipe = tmp_path / "recon.json"
    recipe.write_text(json.dumps({"task": "reconstruct", **RECON, "epochs": 1, "fixed_point_size": 10}))
    out = tmp_path / "run"
    assert main(["ham", "train", str(recipe), "--out", str(out), "--data-dir", MNIST, "--quiet"]) == 0
    metrics = json.loads((out / "metrics.json").read_text(), parse_constant=lambda c: pytest.fail(c))
    assert metrics["test_one_step_mse"] == metrics["final"]["test"]["one_step_mse"]
    assert metrics["config"]["task"] == "reconstruct" and (out / "energy.png").is_file()
    assert main(["ham", "eval", str(out), "--data-dir", MNIST, "--quiet", "--fixed-point-size", "0"]) == 0
    assert float(capsys.readouterr().out) == metrics["test_one_step_mse"]  # the same noise draw
    assert main(["ham", "report", str(out), "--data-dir", MNIST, "--examples", "4"]) == 0
    html = (out / "report.html").read_text(encoding="utf-8")
    for heading in (
        "What the units respond to",
        "Energy during inference",
        "Reconstructions from masked inputs",
    ):
        assert f"<h2>{heading}</h2>" in html
    assert re.search(r"lower half masked: the energy (never rose|rose on \d+ of 4)", html)
    sources = re.findall(r'<img [^>]*src="([^"]+)"', html)
    assert len(sources) == 3 and all(s.startswith("data:image/png;base64,") for s in sources)
    assert (
        main(["ham", "report", str(out), "--out", str(out / "metrics.json")]) == 2
    )  # not the run's own files
    assert "argument --out" in capsys.readouterr().err
    binary = find_chromium()
    if binary is None:
        pytest.skip(HOW_TO_ENABLE)
    pytest.importorskip("websocket", reason="pip install websocket-client to drive Chromium")
    with Chromium(binary) as browser:
        browser.load(out / "report.html")
        images, errors = browser.images(), browser.console_errors()
    assert len(images) == 3 and all(i["complete"] and i["width"] > 0 for i in images) and errors == []


@needs_data()
def test_cli_reports_a_patch_run_and_a_classifier(tmp_path, capsys, one_thread):
    for name, recipe in (
        ("patches", {"task": "patches", **PATCHES, "epochs": 1}),
        (
            "dense",
            {"hidden": 16, "epochs": 1, "batch_size": 50, "train_size": 100, "test_size": 50, "dt": 1.0},
        ),
    ):
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(recipe))
        out = tmp_path / name
        assert main(["ham", "train", str(path), "--out", str(out), "--data-dir", MNIST, "--quiet"]) == 0
        assert (
            main(
                [
                    "ham",
                    "report",
                    str(out),
                    "--data-dir",
                    MNIST,
                    "--quiet",
                    "--examples",
                    "4",
                    "--out",
                    str(tmp_path / f"{name}.html"),
                ]
            )
            == 0
        )
        html = (tmp_path / f"{name}.html").read_text(encoding="utf-8")
        assert "<h2>What the units respond to</h2>" in html and "<h2>Energy during inference</h2>" in html
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"task": "recall"}, "task must be one of 'classify', 'reconstruct', 'patches'"),
        ({"task": "reconstruct", "init": "zero"}, "init must be one of 'shifted', 'zero_mean'"),
        ({"task": "reconstruct", "beta": 0}, "beta must be a positive finite number"),
        ({"task": "reconstruct", "lr_schedule": "step"}, "lr_schedule must be one of 'constant', 'cosine'"),
        ({"task": "reconstruct", "hidden": 3}, "unknown setting(s) 'hidden'"),
        ({"task": "patches", "patch": 5}, "patch=5 must divide"),
        ({"task": "patches", "masked": 16}, "masked must be below the 16 patches"),
        ({"task": "patches", "fixed_point_size": -1}, "fixed_point_size must be a non-negative int"),
    ],
)
def test_bad_task_recipes_are_refused_with_the_setting_named(tmp_path, capsys, values, message):
    recipe = tmp_path / "r.json"
    recipe.write_text(json.dumps(values))
    with pytest.raises(ValueError, match=re.escape(message)):
        load_recipe(recipe)
    assert main(["ham", "train", str(recipe), "--out", str(tmp_path / "run")]) == 2
    assert message in capsys.readouterr().err and not (tmp_path / "run").exists()


def test_the_repository_task_recipes_load():
    from pathlib import Path

    folder = Path(__file__).resolve().parents[1] / "recipes" / "ham"
    recon = load_recipe(folder / "recon-mnist.json")
    assert (recon.memories, recon.beta, recon.noise, recon.lr, recon.batch_size, recon.epochs) == (
        900,
        10.0,
        0.3,
        0.04,
        100,
        10,
    )
    assert isinstance(load_recipe(folder / "patches-fashion.json"), PatchesConfig)


WORKER = """
import sys, torch
torch.set_num_threads(1)
from assocmem.ham import load_recipe, train
from assocmem.ham.data import load_images
config = load_recipe(sys.argv[1])
data = load_images("mnist", data_dir=sys.argv[2], train_size=config.train_size, test_size=config.test_size)
torch.optim.Adam([torch.zeros(1, requires_grad=True)])  # Adam's first use imports torch._dynamo (seconds)
print("training", flush=True)
train(config, data, sys.argv[3], checkpoint_every=1)
"""
TINY = {
    "task": "reconstruct",
    "memories": 10,
    "epochs": 3,
    "batch_size": 20,
    "train_size": 100,
    "test_size": 20,
}


@needs_data()
def test_a_reconstruction_killed_with_sigkill_resumes_bit_for_bit(tmp_path, one_thread):
    """Two kill -9 trials at random moments of a tiny run (the classifier's rule, tests/test_classifier_run.py):
    the killed process trains from the command's code path; the resumed run here, on one thread as it did."""
    recipe = tmp_path / "tiny.json"
    recipe.write_text(json.dumps(TINY | {"fixed_point_size": 0}))
    config = load_recipe(recipe)
    data = load_images("mnist", data_dir=MNIST, train_size=100, test_size=20)
    torch.optim.Adam([torch.zeros(1, requires_grad=True)])  # as the worker: the imports before the clock
    begun = time.perf_counter()
    train(config, data, tmp_path / "whole", checkpoint_every=1)
    seconds = time.perf_counter() - begun
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "OMP_NUM_THREADS": "1"}
    chance, moments = random.Random(), []
    for trial in range(2):
        folder = tmp_path / f"trial{trial}"
        worker = subprocess.Popen(
            [sys.executable, "-c", WORKER, str(recipe), MNIST, str(folder)], stdout=subprocess.PIPE, env=env
        )
        assert worker.stdout.readline() == b"training\n"
        moment = chance.uniform(0.0, 1.2 * seconds)  # a random moment of the training (or just after it)
        time.sleep(moment)
        worker.send_signal(signal.SIGKILL)
        worker.wait()
        started = (folder / "checkpoint.safetensors").exists() or (folder / "config.json").exists()
        moments.append((round(moment, 2), started))
        train(config, data, folder, resume=started, checkpoint_every=1)
        assert identical(tmp_path / "whole", folder), f"trial {trial} killed at {moment:.2f} s differs"
    print(f"killed at (seconds, run started) {moments} of a {seconds:.2f} s run")
