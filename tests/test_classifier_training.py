"""Training the DAM classifier (KH16's algorithm): it learns, resumes exactly, refuses mismatched checkpoints."""

import json

import pytest
import torch

from assocmem.classifier import DAMClassifier
from assocmem.classifier.data import Data, to_pixels
from assocmem.classifier.prototypes import active, votes
from assocmem.classifier.run import CHECKPOINT, load_run, train
from assocmem.classifier.training import (
    Step,
    TrainConfig,
    loss_gradient,
    minibatches,
    targets,
)
from assocmem.cli import build_parser, main
from assocmem.data import load
from tests.conftest import SHARED_DATA, needs_data
from tests.strict_json import load as load_strict

needs_mnist = needs_data("mnist")


def mnist_subset(train: int, test: int) -> Data:
    ds = load("mnist", data_dir=SHARED_DATA / "mnist")
    return Data(
        to_pixels(ds.train.images[:train]),
        ds.train.labels[:train],
        to_pixels(ds.test.images[:test]),
        ds.test.labels[:test],
    )


def synthetic(count: int = 120, pixels: int = 16, classes: int = 3, seed: int = 0) -> Data:
    """Noisy copies of one random +-1 pattern per class."""
    gen = torch.Generator().manual_seed(seed)
    protos = torch.sign(torch.randn(classes, pixels, generator=gen))
    labels = torch.arange(2 * count) % classes
    flips = torch.where(torch.rand(2 * count, pixels, generator=gen) < 0.15, -1.0, 1.0)
    images = protos[labels] * flips
    return Data(images[:count], labels[:count], images[count:], labels[count:])


def small_config(**kw) -> TrainConfig:
    base = dict(
        memories=12, epochs=6, batch_size=30, pixels=16, classes=3, temperature=8.0, final_temperature=4.0
    )
    base.update(ramp_epochs=4, dataset="synthetic")
    base.update(kw)
    return TrainConfig(**base)


@needs_mnist
def test_short_mnist_run_learns():
    """2,000 MNIST images, 100 memories, 12 epochs of minibatches of 100: far below chance (90%)."""
    torch.set_num_threads(max(1, torch.get_num_threads()))
    data = mnist_subset(2000, 2000)
    config = TrainConfig(memories=100, epochs=12, batch_size=100, train_size=2000)
    run = train(config, data)
    errors = [r["test_error"] for r in run.history]
    assert errors[-1] < 0.3, errors
    assert errors[-1] < errors[0]


def test_killed_and_resumed_run_is_bit_identical(tmp_path):
    data, config = synthetic(), small_config()
    whole = train(config, data, tmp_path / "whole", checkpoint_every=2)

    class KilledError(Exception):
        pass

    def kill_after_five(record):
        if record["epoch"] == 5:
            raise KilledError

    with pytest.raises(KilledError):
        train(config, data, tmp_path / "killed", checkpoint_every=2, callback=kill_after_five)
    assert load_run(tmp_path / "killed").epoch == 4  # the last checkpoint before the kill
    resumed = train(config, data, tmp_path / "killed", resume=True, checkpoint_every=2)
    assert torch.equal(resumed.model.memories, whole.model.memories)
    assert torch.equal(resumed.velocity, whole.velocity)
    strip = [{k: v for k, v in r.items() if "seconds" not in k} for r in whole.history]
    assert [{k: v for k, v in r.items() if "seconds" not in k} for r in resumed.history] == strip
    saved = load_run(tmp_path / "killed")
    assert torch.equal(saved.model.memories, whole.model.memories) and saved.epoch == 6
    # a finished run continues to more epochs (the schedule does not depend on the total)
    longer = train(TrainConfig(**{**config.to_dict(), "epochs": 7}), data, tmp_path / "killed", resume=True)
    assert longer.epoch == 7 and not torch.equal(longer.model.memories, whole.model.memories)


def test_checkpoint_errors_are_clear(tmp_path):
    data, config = synthetic(), small_config(epochs=2)
    train(config, data, tmp_path / "run")
    with pytest.raises(
        ValueError, match=r"already holds a classifier run \(checkpoint.safetensors\); pass --resume"
    ):
        train(config, data, tmp_path / "run")
    with pytest.raises(ValueError, match=r"different configuration \(n: checkpoint 3, now 4"):
        train(small_config(epochs=2, n=4), data, tmp_path / "run", resume=True)
    with pytest.raises(ValueError, match=r"lr: checkpoint 0\.04, now 0\.02"):
        train(small_config(epochs=2, lr=0.02), data, tmp_path / "run", resume=True)
    path = tmp_path / "run" / CHECKPOINT
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(ValueError, match="corrupt or truncated checkpoint"):
        load_run(tmp_path / "run")
    with pytest.raises(FileNotFoundError, match="no classifier checkpoint"):
        load_run(tmp_path / "nowhere")


def test_metrics_json(tmp_path):
    data, config = synthetic(), small_config(epochs=3)
    run = train(config, data, tmp_path / "run", checkpoint_every=5)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert [r["epoch"] for r in metrics["per_epoch"]] == [1, 2, 3]
    for key in ("train_error", "test_error", "loss", "seconds"):
        assert key in metrics["final"] and all(key in r for r in metrics["per_epoch"])
    assert (
        metrics["test_error"]
        == metrics["final"]["test_error"]
        == run.model.error(data.test_images, data.test_labels)
    )
    assert metrics["config"] == config.to_dict()
    recorded = json.loads((tmp_path / "run" / "config.json").read_text())
    assert recorded.pop("provenance")["assocmem"] and recorded == config.to_dict()
    assert load_run(tmp_path / "run").epoch == 3  # the last epoch is always checkpointed


def test_minibatches_are_balanced_and_cover_the_epoch():
    labels = torch.tensor([0] * 7 + [1] * 13 + [2] * 10)
    gen = torch.Generator().manual_seed(0)
    batches = minibatches(labels, 6, True, gen)
    assert batches.shape == (5, 6)
    for batch in batches:
        assert torch.bincount(labels[batch], minlength=3).tolist() == [2, 2, 2]
    small = batches[labels[batches] == 0]
    assert set(small.tolist()) == set(range(7))  # a small class is cycled through again
    assert len(set(batches[labels[batches] == 1].tolist())) == 10  # a large class is sampled without repeats
    plain = minibatches(labels, 6, False, gen)
    assert sorted(plain.flatten().tolist()) == list(range(30))


def test_schedule_and_config_checks():
    config = TrainConfig(temperature=300.0, final_temperature=50.0, ramp_epochs=200, lr=0.04)
    assert config.temperature_at(0) == 300.0 and config.temperature_at(100) == 175.0
    assert config.temperature_at(200) == config.temperature_at(3000) == 50.0
    assert config.lr_at(10) == pytest.approx(0.04 * 0.998**10)
    with pytest.raises(ValueError, match="divisible by the 10 classes"):
        TrainConfig(batch_size=105)
    with pytest.raises(ValueError, match="momentum must be in"):
        TrainConfig(momentum=1.0)
    with pytest.raises(ValueError, match="unknown settings"):
        TrainConfig.from_dict({"nn": 3})


def test_momentum_and_normalised_update_are_kh16s():
    """One step: V = p V - grad, xi += eps V / max|V| per memory, clipped to [-1, 1] (docs/reference.md §3)."""
    data, config = synthetic(), small_config(momentum=0.7)
    model = config.model(torch.Generator().manual_seed(0))
    step = Step(model, config)
    t = targets(data.train_labels[:30], 3)
    images = data.train_images[:30]
    xi0 = model.memories.detach().clone()
    step(images, t, 0.05)
    g1 = loss_gradient(config.model(torch.Generator().manual_seed(0)), images, t, config.m).full()
    xi1 = model.memories.detach().clone()
    torch.testing.assert_close(xi1, (xi0 - 0.05 * g1 / g1.abs().amax(1, keepdim=True)).clamp(-1, 1))
    g2 = loss_gradient(model, images, t, config.m).full()
    step(images, t, 0.05)
    v = -0.7 * g1 - g2
    torch.testing.assert_close(
        model.memories.detach(), (xi1 + 0.05 * v / v.abs().amax(1, keepdim=True)).clamp(-1, 1)
    )


def test_xor_trains_end_to_end():
    """The 3-neuron XOR (two inputs, one class neuron) learned by the same training code from random memories."""
    inputs = torch.tensor([[-1.0, -1], [-1, 1], [1, -1], [1, 1]])
    labels = torch.tensor([0, 1, 1, 0])
    data = Data(inputs.repeat(5, 1), labels.repeat(5), inputs, labels)
    config = TrainConfig(
        memories=8, n=3, pixels=2, classes=1, epochs=30, batch_size=4, temperature=2.0, final_temperature=2.0,
        ramp_epochs=0, lr=0.1, lr_decay=0.9, init_mean=0.0, init_std=0.5, dataset="xor",
    )  # fmt: skip
    run = train(config, data)
    assert run.history[-1]["test_error"] == 0.0
    assert torch.equal(
        torch.sign(run.model.fields(inputs)[:, 0]), -inputs.prod(1)
    )  # z ~ -xy, as KH16's memories


def test_votes_count_the_classes_each_memory_supports():
    w = torch.tensor([[0.9, -0.8, -0.9], [0.5, 0.4, -1.0], [-0.2, -0.3, -0.1], [0.1, 0.2, 0.3]])
    v = votes(w)
    assert v.label.tolist() == [0, 0, 2, 2] and v.count.tolist() == [1, 2, 0, 3]
    assert v.single_class == 0.25 and v.histogram() == [1, 1, 1, 1]
    torch.testing.assert_close(v.margin, torch.tensor([1.7, 0.1, 0.1, 0.1]))
    with pytest.raises(ValueError, match="C >= 2"):
        votes(torch.zeros(3, 1))


def test_dead_memories_are_found():
    """A rectified memory that no image activates takes no part in the class update."""
    images = torch.sign(torch.randn(5, 16))
    images[:, :8] = -1.0  # a background common to all images
    dead = torch.cat([torch.ones(2, 8), torch.zeros(2, 8), torch.ones(2, 3)], 1)  # h = -8 - 3, shifts <= 2
    xi = torch.cat([torch.cat([images[:2], -torch.ones(2, 3)], 1), dead])
    model = DAMClassifier(xi, pixels=16, classes=3, n=3)
    assert active(model, images).tolist() == [True, True, False, False]
    fields = model.fields(images).detach()
    torch.testing.assert_close(
        DAMClassifier(xi[:2], pixels=16, classes=3, n=3).fields(images).detach(), fields
    )
    assert active(DAMClassifier(xi, pixels=16, classes=3, n=3, F="power"), images).all()


@needs_mnist
def test_cli_train_eval_and_prototypes(tmp_path, capsys):
    out = tmp_path / "run"
    args = [
        "classify",
        "train",
        "--data-dir",
        str(SHARED_DATA / "mnist"),
        "--train-size",
        "1000",
        "--memories",
        "20",
    ]
    args += ["--epochs", "2", "--batch-size", "100", "--out", str(out), "--no-compile", "--threads", "1"]
    assert main(args) == 0
    printed, log = capsys.readouterr()
    assert (
        f"writing to {out}" in printed
        and "minibatch error: training images misclassified before each" in printed
    )
    assert "(whole test set), training error" in printed and "(whole training set, final weights)" in printed
    # stderr is not a terminal here: one plain line per epoch, no progress bar
    assert log.count("epoch 1/2: loss ") == 1 and "minibatch error" in log and "training:" not in log
    for name in ("config.json", CHECKPOINT, "metrics.json", "memories.png"):
        assert (out / name).is_file()
    assert main(args) == 2 and "pass --resume" in capsys.readouterr().err
    assert main([*args[:-9], "--epochs", "3", *args[-7:], "--resume", "--quiet"]) == 0
    assert capsys.readouterr() == ("", "")  # --quiet: nothing but errors
    assert main(["classify", "eval", str(out), "--data-dir", str(SHARED_DATA / "mnist")]) == 0
    test_error = load_strict(out / "metrics.json")["test_error"]
    assert f"test error {100 * test_error:.2f}% on 10000 mnist images (epoch 3)" in capsys.readouterr().out
    assert main(["classify", "eval", str(out), "--data-dir", str(SHARED_DATA / "mnist"), "--quiet"]) == 0
    assert float(capsys.readouterr().out) == test_error
    fashion = SHARED_DATA / "fashion-mnist"
    if (fashion / "t10k-images-idx3-ubyte.gz").is_file():  # another data set than the run's: only when asked
        other = ["classify", "eval", str(out), "--dataset", "fashion-mnist", "--data-dir", str(fashion)]
        assert main(other) == 2 and "was trained on mnist; pass --other-dataset" in capsys.readouterr().err
        assert main([*other, "--other-dataset"]) == 0
        assert "fashion-mnist images (epoch 3, trained on mnist)" in capsys.readouterr().out
    proto = ["classify", "prototypes", str(out), str(out), "--data-dir", str(SHARED_DATA / "mnist")]
    assert main([*proto, "--out", str(tmp_path / "p.png"), "--json", str(tmp_path / "p.json")]) == 0
    assert (tmp_path / "p.png").is_file() and "single-class" in capsys.readouterr().out
    written = load_strict(tmp_path / "p.json")
    assert written["runs"][str(out)]["total"] == 20 and written["runs"][str(out)]["dataset"] == "mnist"
    assert written["provenance"]["assocmem"]
    with pytest.raises(SystemExit):
        main(["classify", "eval", str(tmp_path / "none")])
    assert "argument dir: expected a run folder" in capsys.readouterr().err


def test_settings_follow_the_regime_of_n():
    small, large = TrainConfig.for_degree(3), TrainConfig.for_degree(30, momentum=0.7, lr=None)
    assert (small.m, small.ramp_epochs, small.final_temperature) == (3, 200, 100.0)
    assert (large.m, large.ramp_epochs, large.temperature, large.final_temperature) == (30, 0, 540.0, 540.0)
    assert large.momentum == 0.7 and large.lr == TrainConfig().lr
    assert TrainConfig.for_degree(30, temperature=600.0).final_temperature == 600.0  # constant T: one value
    with pytest.raises(ValueError, match="ramp_epochs=0 the temperature is constant"):
        TrainConfig(ramp_epochs=0, temperature=300.0, final_temperature=100.0)


@pytest.mark.parametrize("action", ["train", "eval", "prototypes"])
def test_classify_actions_have_complete_help(action, capsys):
    """Every option of each classify action says what it does and its default (as test_cli checks commands)."""
    with pytest.raises(SystemExit):
        main(["classify", action, "--help"])
    out = " ".join(capsys.readouterr().out.split())
    parser = build_parser()._subparsers._group_actions[0].choices["classify"]
    sub = parser._subparsers._group_actions[0].choices[action]
    for option in sub._actions:
        if option.dest == "help":
            continue
        assert option.help and " ".join(option.help.split()[:2]) in out, f"classify {action} {option.dest}"
        if option.default not in (None, False) and option.option_strings:
            assert "default" in option.help or str(option.default) in option.help, f"{option.dest}: default"
