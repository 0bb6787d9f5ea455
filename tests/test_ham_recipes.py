"""The HAM recipes: a tiny recipe learns, a killed run resumes bit for bit, a network that is not a memory is
refused, and the command line's bad input gets a clear error (docs/ham.md, "Recipes")."""

import json
import math
import re

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from assocmem.cli import main
from assocmem.ham import HamConfig, evaluate, load_recipe, train
from assocmem.ham.data import load_images
from assocmem.ham.run import new_run, save_checkpoint
from tests.conftest import SHARED_DATA, needs_data

MNIST = str(SHARED_DATA / "mnist")
TINY = {
    "architecture": "dense",
    "dataset": "mnist",
    "hidden": 32,
    "epochs": 2,
    "batch_size": 50,
    "train_size": 300,
    "test_size": 200,
    "lr": 0.005,
    "dt": 1.0,
}
TINY_CONV = {
    "architecture": "conv",
    "dataset": "mnist",
    "channels": 4,
    "kernel": 3,
    "stride": 2,
    "pool": 2,
    "hidden": 16,
    "epochs": 1,
    "batch_size": 50,
    "train_size": 150,
    "test_size": 100,
    "lr": 0.01,
    "gradient": "unrolled",
    "dt": 1.0,
}


@pytest.fixture(scope="module")
def data():
    return load_images("mnist", data_dir=MNIST, train_size=300, test_size=200)


@needs_data()
def test_tiny_dense_recipe_learns_and_every_test_input_settles(data, one_thread):
    run = train(HamConfig(**TINY), data)
    test = run.history[-1]["test"]
    assert test["accuracy"] > 0.5  # chance is 0.1
    assert test["converged"] == 1.0 and test["energy_non_increasing"] >= 0.99
    assert run.history[-1]["train_loss"] < run.history[0]["train_loss"]
    assert run.model.certificate().bounded


@needs_data()
def test_tiny_conv_recipe_with_implicit_gradient_stays_bounded(data, one_thread):
    config = HamConfig(**(TINY_CONV | {"gradient": "implicit"}))
    run = train(config, load_images("mnist", data_dir=MNIST, train_size=150, test_size=100))
    certificate = run.model.certificate()
    assert certificate.bounded and certificate.coupling < 1, certificate
    assert run.history[-1]["test"]["converged"] == 1.0


def test_the_conv_bound_keeps_the_dense_synapse_within_what_the_pooling_leaves():
    """The chain features - pooled - hidden has coupling sqrt(a^2 + b^2) (a = 1/pool, b = |W|): bound() scales
    W to sqrt(bound^2 - a^2) when it grows past it, and the independent certificate then finds the coupling below
    the bound."""
    config = HamConfig(**(TINY_CONV | {"hidden": 12, "coupling_bound": 0.7}))
    model = new_run(config).model
    w = model.network.synapses[2].weight
    limit = (0.7**2 - 0.5**2) ** 0.5
    assert torch.linalg.matrix_norm(w.detach(), 2) <= limit * (1 + 1e-3)  # bounded from the first relaxation
    with torch.no_grad():
        w.mul_(10.0)
    factor = model.bound()
    assert factor < 0.2
    assert torch.linalg.matrix_norm(w.detach(), 2) == pytest.approx(limit, rel=1e-3)
    certificate = model.certificate()
    assert certificate.bounded and certificate.coupling <= 0.7 * (1 + 1e-3), certificate
    assert model.bound() == 1.0  # within the bound: untouched


def test_the_dense_recipe_leaves_its_image_synapse_free():
    """The dense network's image -> hidden synapse has a clamped end (no chain of free linear layers): bound()
    must neither rescale it at construction nor after a step (it once did, and the dense recipes stopped training
    with a ConvergenceError within 50 minibatches)."""
    model = new_run(HamConfig(**TINY)).model
    synapse = next(s for s in model.network.synapses if s.pre == "image" and s.post == "hidden")
    with torch.no_grad():
        synapse.weight.mul_(100.0)
    before = synapse.weight.detach().clone()
    assert model.bound() == 1.0 and model.bound_state() == {}
    assert torch.equal(synapse.weight.detach(), before)


@pytest.mark.parametrize("hidden", [{"hidden": 12, "hidden_activation": "tanh"}, {"hidden": 0}])
def test_a_bounded_hidden_layer_leaves_its_synapse_free_and_the_energy_bounded(hidden):
    """A tanh hidden layer's synapse, or the labels' synapse when there is no hidden layer, is not bounded."""
    config = HamConfig(**(TINY_CONV | hidden))
    model = new_run(config).model
    w = model.network.synapses[2].weight
    with torch.no_grad():
        w.mul_(100.0)
    assert model.bound() == 1.0 and model.bound_state() == {}
    certificate = model.certificate()
    assert certificate.bounded, certificate
    images = torch.rand(3, 1, 28, 28)
    traj = model.settle(images, None, strict=True, record=True)
    e = traj.energies
    assert bool(traj.converged.all()) and bool((e[1:] <= e[:-1] + 1e-4 * e[:-1].abs()).all())


@needs_data()
@pytest.mark.parametrize("schedule", ["constant", "cosine"])
def test_a_run_killed_mid_epoch_resumes_to_identical_weights(data, tmp_path, one_thread, schedule):
    config = HamConfig(
        **(TINY_CONV | {"hidden": 0, "batch_size": 25, "train_size": 75, "test_size": 20, "epochs": 2})
        | {"lr_schedule": schedule}
    )
    small = load_images("mnist", data_dir=MNIST, train_size=75, test_size=20)
    whole = train(config, small, tmp_path / "whole", checkpoint_every=2)

    class KilledError(Exception):
        pass

    def kill(batch, batches, loss):
        if batch == 3 and state["epoch"] == 1:  # in the second epoch, after its mid-epoch checkpoint
            raise KilledError

    state = {"epoch": 0}
    with pytest.raises(KilledError):
        train(
            config,
            small,
            tmp_path / "cut",
            checkpoint_every=2,
            on_batch=kill,
            on_epoch=lambda r: state.update(epoch=r["epoch"]),
        )
    with safe_open(tmp_path / "cut" / "checkpoint.safetensors", "pt") as f:
        assert (f.metadata()["epoch"], f.metadata()["batch"]) == ("1", "2")
    with pytest.raises(ValueError, match="--resume"):
        train(config, small, tmp_path / "cut")
    resumed = train(config, small, tmp_path / "cut", resume=True)
    a = load_file(tmp_path / "whole" / "checkpoint.safetensors")
    b = load_file(tmp_path / "cut" / "checkpoint.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert resumed.history == whole.history or [r["test"] for r in resumed.history] == [
        r["test"] for r in whole.history
    ]
    longer = train(HamConfig(**(config.to_dict() | {"t_max": 500.0})), small, tmp_path / "cut", resume=True)
    assert longer.model.config.t_max == 500.0  # a resume's raised time budget reaches the relaxations
    with pytest.raises(ValueError, match=r"lr: checkpoint 0\.01, now 0\.02"):
        train(HamConfig(**(config.to_dict() | {"lr": 0.02})), small, tmp_path / "cut", resume=True)
    # the last of the 6 steps (3 minibatches, 2 epochs) took the schedule's rate after 5 done
    last = json.loads(
        safe_open(tmp_path / "whole" / "checkpoint.safetensors", "pt").metadata()["param_groups"]
    )
    expected = 0.01 if schedule == "constant" else 0.01 * (1 + math.cos(math.pi * 5 / 6)) / 2
    assert last[0]["lr"] == pytest.approx(expected, rel=1e-12)
    more = HamConfig(**(config.to_dict() | {"epochs": 3}))
    if schedule == "cosine":  # more epochs would stretch the decay the run has followed so far
        with pytest.raises(ValueError, match="lr_schedule='cosine' decays over epochs=2"):
            train(more, small, tmp_path / "cut", resume=True)
    else:
        assert train(more, small, tmp_path / "cut", resume=True).epoch == 3


@needs_data()
def test_eval_refuses_a_network_whose_energy_is_unbounded(tmp_path, capsys, one_thread):
    config = HamConfig(**(TINY_CONV | {"train_size": 50, "test_size": 20}))
    small = load_images("mnist", data_dir=MNIST, train_size=50, test_size=20)
    run = new_run(config)
    with torch.no_grad():  # couple the linear layers pooled and hidden beyond the bound
        synapse = next(s for s in run.model.network.synapses if s.name == "pooled->hidden")
        synapse.weight.mul_(50.0)
    assert not run.model.certificate().bounded
    save_checkpoint(tmp_path / "run", run, run.generator.get_state())
    status = main(["ham", "eval", str(tmp_path / "run"), "--data-dir", MNIST, "--test-size", "20"])
    err = capsys.readouterr().err
    assert status == 1 and "not a memory" in err and "energy" in err
    with pytest.raises(Exception, match="energy"):
        evaluate(run.model, small.test_images[:20], small.test_labels[:20])


@needs_data()
def test_cli_trains_evaluates_and_writes_strict_json(tmp_path, capsys, one_thread):
    recipe = tmp_path / "tiny.toml"
    recipe.write_text("\n".join(f"{k} = {json.dumps(v)}" for k, v in (TINY | {"epochs": 1}).items()))
    out = tmp_path / "run"
    assert main(["ham", "train", str(recipe), "--out", str(out), "--data-dir", MNIST, "--quiet"]) == 0
    metrics = json.loads((out / "metrics.json").read_text(), parse_constant=lambda c: pytest.fail(c))
    assert metrics["final"]["test"]["converged"] == 1.0 and (out / "curves.png").is_file()
    assert (out / "energy.png").is_file()
    assert main(["ham", "eval", str(out), "--data-dir", MNIST, "--json", str(tmp_path / "e.json")]) == 0
    result = json.loads((tmp_path / "e.json").read_text())
    assert result["accuracy"] == metrics["final"]["test"]["accuracy"]
    config = json.loads((out / "config.json").read_text())
    for made in (metrics, result, config):  # every results file says what made it
        assert made["provenance"]["torch"] == torch.__version__ and "commit" in made["provenance"]
    capsys.readouterr()
    # config.json only records the checkpoint's settings: an edit of it is refused, not ignored in silence
    edited = config | {"method": "dopri5" if config["method"] != "dopri5" else "exp_euler", "t_max": 7.0}
    (out / "config.json").write_text(json.dumps(edited))
    assert main(["ham", "eval", str(out), "--data-dir", MNIST, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"method: config.json '{edited['method']}', checkpoint '{config['method']}'" in err
    assert "t_max" not in err, "a setting a resume may change is not compared"
    (out / "config.json").write_text("[1, 2]")
    assert main(["ham", "eval", str(out), "--data-dir", MNIST, "--quiet"]) == 2
    assert "config.json: holds list, not the run's settings" in capsys.readouterr().err


def test_the_repository_recipes_load():
    from pathlib import Path

    folder = Path(__file__).resolve().parents[1] / "recipes" / "ham"
    names = sorted(p.name for p in folder.iterdir())
    assert {"dense-mnist.json", "dense-fashion.json", "conv-fashion.json"} <= set(names)
    for path in folder.iterdir():
        load_recipe(path)


@pytest.mark.parametrize(
    "content, suffix, message",
    [
        ('{"hidden": 10,', ".json", "not valid JSON"),
        ('{"hiden": 10}', ".json", "unknown setting(s) 'hiden'"),
        ('{"gradient": "backprop"}', ".json", "gradient must be one of 'implicit', 'unrolled'"),
        ('{"architecture": "dense", "hidden": 0}', ".json", "hidden >= 1"),
        ('{"architecture": "conv", "stride": 3}', ".json", "stride=3 and pool=2 must tile"),
        ('{"lr": -1}', ".json", "lr must be a positive finite number"),
        ('{"coupling_bound": 1.0}', ".json", "coupling_bound must be in (0, 1)"),
        ('{"architecture": "conv", "hidden": 8, "coupling_bound": 0.5}', ".json", "must exceed the pooling"),
        ('{"hidden_activation": "gelu"}', ".json", "hidden_activation must be one of 'relu', 'tanh'"),
        ('{"lr_schedule": "step"}', ".json", "lr_schedule must be one of 'constant', 'cosine'"),
        ("[1, 2]", ".json", "a recipe must be a table"),
        ("hidden = ", ".toml", "not valid TOML"),
    ],
)
def test_bad_recipes_are_refused_with_the_setting_named(tmp_path, capsys, content, suffix, message):
    recipe = tmp_path / f"r{suffix}"
    recipe.write_text(content)
    assert main(["ham", "train", str(recipe), "--out", str(tmp_path / "run")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_load_recipe_refuses_other_suffixes(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("{}")
    with pytest.raises(ValueError, match=r"expected a \.json or \.toml file"):
        load_recipe(recipe)


def test_cli_bad_paths_and_options(tmp_path, capsys):
    """Refused while parsing (exit 2, the argument named), before anything is written."""
    recipe = tmp_path / "r.json"
    recipe.write_text("{}")
    (tmp_path / "r.yaml").write_text("{}")
    (tmp_path / "file").write_text("")
    for argv, message in (
        (
            ["train", str(tmp_path / "missing.json"), "--out", str(tmp_path / "o")],
            "argument recipe: .* does not exist",
        ),
        (
            ["train", str(tmp_path / "r.yaml"), "--out", str(tmp_path / "o")],
            r"argument recipe: .*\.yaml is not \.json",
        ),
        (["eval", str(tmp_path)], "argument dir: .* holds no checkpoint.safetensors"),
        (
            ["train", str(recipe), "--out", str(tmp_path / "file")],
            "argument --out: .* is a file, not a folder",
        ),
        *(
            (["train", str(recipe), "--out", str(tmp_path / "o"), *option], f"argument {option[0]}: expected")
            for option in (
                ["--threads", "0"],
                ["--epochs", "x"],
                ["--checkpoint-every", "-1"],
                ["--t-max", "nan"],
            )
        ),
    ):
        with pytest.raises(SystemExit) as exit_info:
            main(["ham", *argv])
        assert exit_info.value.code == 2
        assert re.search(message, capsys.readouterr().err), argv
    assert not (tmp_path / "o").exists()
