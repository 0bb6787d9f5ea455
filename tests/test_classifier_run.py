"""A classifier run folder never holds a silent wrong answer: divergence stops the run, edits and mismatches are
refused, every file is strict JSON with its provenance, and a run killed with SIGKILL resumes bit for bit."""

import json
import os
import random
import signal
import subprocess
import sys
import time
import warnings

import pytest
import torch
from safetensors import safe_open

from assocmem.classifier import class_update
from assocmem.classifier.run import CHECKPOINT, CONFIG, METRICS, load_run, started, train
from assocmem.classifier.training import DivergenceError, loss_gradient
from assocmem.cli import main
from tests.conftest import SHARED_DATA, needs_data
from tests.strict_json import load, strict
from tests.test_classifier_training import small_config, synthetic

#: Training that diverges in epoch 6: n = 30 with the temperature ramped down to 0.2 (F(h/T) overflows float32).
DIVERGING = {"n": 30, "m": 3, "temperature": 8.0, "final_temperature": 0.2, "ramp_epochs": 5, "epochs": 8}


def same_state(a, b) -> bool:
    """Bit-identical memories, momentum and generator state, and the same history but for the timings."""

    def strip(history):
        return [{k: v for k, v in r.items() if "seconds" not in k} for r in history]

    return (
        torch.equal(a.model.memories, b.model.memories)
        and torch.equal(a.velocity, b.velocity)
        and torch.equal(a.velocity_log_scale, b.velocity_log_scale)
        and torch.equal(a.generator_state, b.generator_state)
        and strip(a.history) == strip(b.history)
    )


def test_diverging_training_stops_at_once_and_keeps_the_last_good_checkpoint(tmp_path):
    data = synthetic()
    with pytest.raises(DivergenceError, match=r"diverged in epoch 6, minibatch 1: the loss is nan") as err:
        train(small_config(**DIVERGING), data, tmp_path / "run", checkpoint_every=2)
    assert f"{tmp_path / 'run' / CHECKPOINT} holds the last good epoch, 4" in str(err.value)
    kept = load_run(tmp_path / "run")
    assert kept.epoch == 4 and torch.isfinite(kept.model.memories).all()
    good = train(small_config(**{**DIVERGING, "epochs": 4}), data)  # the same schedule, stopped in time
    assert torch.equal(kept.model.memories, good.model.memories)
    metrics = load(tmp_path / "run" / METRICS)  # strict JSON: the NaN loss is null and named
    assert metrics["diverged"]["epoch"] == 6 and metrics["diverged"]["loss"] is None
    assert metrics["diverged"]["checkpoint_epoch"] == 4 and len(metrics["per_epoch"]) == 5
    assert metrics["non_finite"]["values"] == {"diverged.loss": "nan"}


@needs_data("mnist")
def test_the_issues_diverging_command_exits_1_without_a_checkpoint(tmp_path, capsys):
    out = tmp_path / "run"
    argv = [
        "classify",
        "train",
        "--data-dir",
        str(SHARED_DATA / "mnist"),
        "--train-size",
        "200",
        "--memories",
    ]
    argv += ["20", "--batch-size", "100", "--epochs", "3", "--n", "30", "--temperature", "1"]
    argv += ["--final-temperature", "1", "--no-compile", "--threads", "1", "--out", str(out)]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "error: training diverged in epoch 1, minibatch 1: the loss is nan" in err
    assert "no checkpoint was written" in err
    assert not (out / CHECKPOINT).exists() and not (out / "memories.png").exists()
    assert load(out / METRICS)["diverged"]["loss"] is None


def test_checkpoints_are_ordinary_files_with_strict_metadata_and_provenance(tmp_path):
    mask = os.umask(0o022)
    try:
        train(small_config(epochs=2), synthetic(), tmp_path / "run")
    finally:
        os.umask(mask)
    for name in (CHECKPOINT, CONFIG, METRICS):
        assert (tmp_path / "run" / name).stat().st_mode & 0o777 == 0o644, name
    with safe_open(tmp_path / "run" / CHECKPOINT, framework="pt") as f:
        metadata = f.metadata()
    for key in ("config", "history", "arithmetic", "provenance"):
        json.loads(metadata[key], parse_constant=strict)
    arithmetic = json.loads(metadata["arithmetic"])
    assert arithmetic == {
        "kernels": "eager",
        "threads": torch.get_num_threads(),
        "device": "cpu",
        "cpu": torch.backends.cpu.get_cpu_capability(),
        "torch": torch.__version__,
    }
    for made in (
        json.loads(metadata["provenance"]),
        load(tmp_path / "run" / CONFIG)["provenance"],
        load(tmp_path / "run" / METRICS)["provenance"],
    ):
        assert made["torch"] == torch.__version__ and (made["commit"] or made["commit_note"])


def test_an_edited_config_json_is_refused_and_left_as_it_is(tmp_path):
    data, config = synthetic(), small_config(epochs=2)
    train(config, data, tmp_path / "run")
    path = tmp_path / "run" / CONFIG
    edited = {**json.loads(path.read_text()), "lr": 0.5, "n": 4}
    path.write_text(json.dumps(edited))
    with pytest.raises(
        ValueError, match=r"config.json differs from the run's checkpoint \(lr: config.json 0.5, "
    ):
        load_run(tmp_path / "run")
    with pytest.raises(ValueError, match=r"n: config.json 4, checkpoint 3"):
        train(small_config(epochs=3), data, tmp_path / "run", resume=True)
    assert json.loads(path.read_text()) == edited  # not overwritten
    path.write_text(json.dumps({**edited, "lr": config.lr, "n": config.n, "epochs": 9}))
    assert (
        load_run(tmp_path / "run").epoch == 2
    )  # epochs may differ: a resumed run raises it before checkpointing


def test_resume_needs_a_run_and_restarts_one_killed_before_its_first_checkpoint(tmp_path):
    data, config = synthetic(), small_config(epochs=3)
    for folder in (tmp_path / "missing", tmp_path / "empty"):
        with pytest.raises(ValueError, match="holds no classifier run to resume"):
            train(config, data, folder, resume=True)
    assert not (tmp_path / "missing").exists()
    (tmp_path / "early").mkdir()
    (tmp_path / "early" / CONFIG).write_text(json.dumps({**config.to_dict(), "provenance": {}}))
    assert started(tmp_path / "early") == CONFIG
    with pytest.raises(ValueError, match=r"already holds a classifier run \(config.json\)"):
        train(config, data, tmp_path / "early")
    with pytest.raises(ValueError, match=r"lr: config\.json 0\.04, options 0\.02"):
        train(small_config(epochs=3, lr=0.02), data, tmp_path / "early", resume=True)
    assert same_state(train(config, data, tmp_path / "early", resume=True), train(config, data))


def test_too_few_images_for_one_minibatch_is_found_before_the_folder_is_written(tmp_path):
    with pytest.raises(ValueError, match="120 training images do not fill one minibatch of 150"):
        train(small_config(batch_size=150), synthetic(), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_resume_with_other_kernels_is_refused_and_other_threads_warn(tmp_path):
    data, config = synthetic(), small_config(epochs=2)
    train(small_config(epochs=1), data, tmp_path / "run")
    with pytest.raises(ValueError, match="trained with eager kernels and would continue with fused ones"):
        train(config, data, tmp_path / "run", resume=True, compile=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(threads + 1)
    try:
        with pytest.warns(RuntimeWarning, match=rf"threads {threads} -> {threads + 1}"):
            train(config, data, tmp_path / "run", resume=True)
    finally:
        torch.set_num_threads(threads)


def test_a_failing_compiled_kernel_is_an_error_not_a_silent_switch_to_eager(monkeypatch):
    """A damaged compile cache made the kernels fall back to eager ones in the middle of a run (other rounding)."""

    def broken(fn, **options):
        def run(*args):
            raise RuntimeError("CppCompileError: a truncated .so in the inductor cache")

        return run

    monkeypatch.setattr(class_update.torch, "compile", broken)
    data, config = synthetic(), small_config()
    model = config.model(torch.Generator().manual_seed(0), compile=True)
    assert model.kernels.kind == "fused"  # numba loops: torch.compile is not used at this degree
    model.kernels.fused = False  # torch.compile's kernels, as for n > 6 or another device
    assert model.kernels.kind == "compiled"
    t = torch.where(torch.nn.functional.one_hot(data.train_labels[:30], 3) > 0, 1.0, -1.0)
    with pytest.raises(class_update.CompileError, match=r"damaged torch\.compile cache"):
        loss_gradient(model, data.train_images[:30], t, config.m)
    assert model.kernels.kind == "compiled"  # no silent switch
    with pytest.raises(class_update.CompileError):
        loss_gradient(model, data.train_images[:30], t, config.m)


def test_without_a_compiler_the_kernels_are_eager_from_the_start(monkeypatch):
    monkeypatch.setattr(class_update, "compile_problem", lambda: "no C++ compiler (g++) found")
    with pytest.warns(RuntimeWarning, match="no C\\+\\+ compiler"):
        # beyond the fused loops' degrees: torch.compile's kernels
        model = small_config(n=8).model(compile=True)
    assert model.kernels.kind == "eager"
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        model = small_config().model(compile=True)  # the numba loops need no C++ compiler
    assert model.kernels.kind == "fused"
    # the autograd backward beside the numba loops goes eager too, not through torch.compile (which would fail)
    monkeypatch.setattr(
        class_update.torch, "compile", lambda fn, **options: pytest.fail("torch.compile called")
    )
    hs, ds = torch.rand(5, 4), torch.rand(3, 4)
    dhs, dds = model.kernels.backward(hs, ds, torch.rand(5, 3))
    assert dhs.shape == hs.shape and dds.shape == ds.shape and torch.isfinite(dhs).all()


WORKER = """
import sys, json, torch
torch.set_num_threads(1)
from assocmem.classifier.data import Data
from assocmem.classifier.run import train
from assocmem.classifier.training import TrainConfig
data = Data(*torch.load(sys.argv[1]))
config = TrainConfig.from_dict(json.loads(sys.argv[2]))
print("training", flush=True)
train(config, data, sys.argv[3], checkpoint_every=1)
"""


def test_a_run_killed_with_sigkill_at_random_moments_resumes_bit_for_bit(tmp_path):
    """Three kill -9 trials (experiments/kill_resume.py runs 20 of the command line, compiled kernels)."""
    data = synthetic(count=300)
    config = small_config(epochs=40)
    torch.save(tuple(vars(data).values()), tmp_path / "data.pt")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        start = time.perf_counter()
        whole = train(config, data, tmp_path / "whole", checkpoint_every=1)
        seconds = time.perf_counter() - start
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
        moments, chance = [], random.Random()
        for trial in range(3):
            folder = tmp_path / f"trial{trial}"
            worker = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    WORKER,
                    str(tmp_path / "data.pt"),
                    json.dumps(config.to_dict()),
                    str(folder),
                ],
                stdout=subprocess.PIPE,
                env=env,
            )
            assert worker.stdout.readline() == b"training\n"
            moment = chance.uniform(0.0, 1.5 * seconds)  # a random moment of the training (or just after it)
            time.sleep(moment)
            worker.send_signal(signal.SIGKILL)
            worker.wait()
            moments.append((moment, load_run(folder).epoch if (folder / CHECKPOINT).exists() else None))
            with warnings.catch_warnings():
                warnings.simplefilter("error", RuntimeWarning)  # the same arithmetic: no warning
                resumed = train(config, data, folder, resume=started(folder) is not None, checkpoint_every=1)
            assert same_state(resumed, whole), f"trial {trial} killed at {moment:.2f} s differs"
            assert same_state(load_run(folder), whole)
    finally:
        torch.set_num_threads(threads)
    print(f"killed at (seconds, epoch checkpointed): {moments} of a {seconds:.2f} s run")
