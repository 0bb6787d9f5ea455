"""Rows of the bad-input table (tests/test_bad_input.py) for assocmem.ham: the recipes of every task, the
classifier's relaxation, the evaluation, and reading recipes and checkpoints. The command line that drives them has
its own table (tests/test_cli_bad_input.py).

``train`` shares its qualified name with the classifier's ``train`` (tests/bad_input_training.py), so its row is
keyed with its module (the walker keys entry points by module and qualified name)."""

from __future__ import annotations

import torch

from assocmem.ham import (
    HAMClassifier,
    HamConfig,
    ImageData,
    PatchesConfig,
    ReconstructConfig,
    evaluate,
    load_checkpoint,
    train,
)
from assocmem.ham import load_recipe as read
from tests.bad_input_cases import INF, NAN, Bad, Result, meta, poke

G = torch.Generator().manual_seed(0)
IMAGES, LABELS = torch.rand(3, 1, 28, 28, generator=G), torch.arange(3)
MODEL = HAMClassifier(HamConfig(hidden=8), torch.Generator().manual_seed(0))
META = torch.tensor(0.1, device="meta")
NUMBERS = "takes settings, no tensor"


def fit(**kw: object) -> object:
    """``train`` on three images (the checks come first: nothing trains)."""
    parts = {"train_images": IMAGES, "train_labels": LABELS, "test_images": IMAGES, "test_labels": LABELS}
    options = {k: kw.pop(k) for k in list(kw) if k not in parts}
    return train(HamConfig(hidden=8), ImageData(**{**parts, **kw}), **options)


def config_rows(
    cls: type, nan: str, inf: str, count: str, listed: str, meta_field: str, option: dict
) -> dict:
    """The rows of a recipe class and of its ``from_dict``: each kind of bad value in one named field."""
    made = {
        "nan": Bad(lambda: cls(**{nan: NAN}), nan),
        "inf": Bad(lambda: cls(**{inf: INF}), inf),
        "last_dim": Bad(lambda: cls(**{count: 0}), count),
        "rank": Bad(lambda: cls(**{listed: [2]}), listed),
        "empty": Bad(lambda: cls(train_size=0), "train_size"),
        "dtype": Bad(lambda: cls(dtype="int64"), "dtype"),
        "meta": Bad(lambda: cls(**{meta_field: META}), meta_field),
        "option": Bad(lambda: cls(**option), next(iter(option))),
    }
    name = cls.__name__
    return {
        name: made,
        f"{name}.from_dict": {
            "nan": Bad(lambda: cls.from_dict({nan: NAN}), nan),
            "inf": Bad(lambda: cls.from_dict({inf: INF}), inf),
            "last_dim": Bad(lambda: cls.from_dict({count: 0}), count),
            "rank": Bad(lambda: cls.from_dict([("lr", 0.1)]), "a recipe must be a table"),
            "empty": Result(lambda: cls.from_dict({}), lambda c: c == cls(), "no settings: the defaults"),
            "dtype": Bad(lambda: cls.from_dict({"dtype": "float16"}), "dtype"),
            "meta": NUMBERS,
            "option": Bad(lambda: cls.from_dict({"nope": 1}), "unknown setting"),
        },
        f"{name}.to_dict": dict.fromkeys(
            ("nan", "inf", "last_dim", "rank", "empty", "dtype", "meta", "option"), "no input"
        ),
    }


def relaxation_rows(method: str) -> dict:
    """HAMClassifier.settle and .logits: the images go to relax as the clamped image layer's state."""
    call = getattr(MODEL, method)
    return {
        "nan": Bad(lambda: call(poke(IMAGES, NAN)), r"state\['image'\]"),
        "inf": Bad(lambda: call(poke(IMAGES, INF)), r"state\['image'\]"),
        "last_dim": Bad(lambda: call(IMAGES.reshape(3, 784)[:, :-1]), r"images must have shape \(B, 784\)"),
        "rank": Bad(lambda: call(IMAGES[0]), r"images must have shape"),
        "empty": Result(
            lambda: call(IMAGES[:0]),
            lambda out: (out if torch.is_tensor(out) else out.states["labels"]).shape == (0, 10),
            "an empty batch relaxes to an empty batch",
        ),
        "dtype": Bad(lambda: call(IMAGES.long()), r"state\['image'\]"),
        "meta": Bad(lambda: call(meta(IMAGES)), r"state\['image'\]"),
        "option": Bad(lambda: call(IMAGES, "backprop"), "gradient"),
    }


TABLE: dict[str, dict[str, Bad | Result | str]] = {
    **config_rows(HamConfig, "lr", "dt", "channels", "kernel", "t_max", {"gradient": "backprop"}),
    **config_rows(ReconstructConfig, "beta", "noise", "memories", "memories", "lr", {"init": "zero"}),
    **config_rows(PatchesConfig, "dt", "lr", "dim", "heads", "tol", {"lr_schedule": "step"}),
    "HAMClassifier.settle": relaxation_rows("settle"),
    "HAMClassifier.logits": relaxation_rows("logits"),
    "HAMClassifier.start": {
        "nan": "copies the images into a state (settle's row checks them)",
        "inf": "as nan",
        "last_dim": Bad(lambda: MODEL.start(IMAGES[..., :-1]), r"start: images must have shape"),
        "rank": Bad(lambda: MODEL.start(IMAGES.reshape(-1)), r"start: images must have shape"),
        "empty": Result(
            lambda: MODEL.start(IMAGES[:0]), lambda s: s["image"].shape[0] == 0, "an empty state"
        ),
        "dtype": "as nan",
        "meta": "as nan",
        "option": "no options",
    },
    "assocmem.ham.run.train": {
        "nan": Bad(lambda: fit(train_images=poke(IMAGES, NAN)), "train images"),
        "inf": Bad(lambda: fit(test_images=poke(IMAGES, INF)), "test images"),
        "last_dim": Bad(lambda: fit(train_images=IMAGES.reshape(3, 784)[:, :-1]), "train images"),
        "rank": Bad(lambda: fit(train_labels=LABELS[:, None]), "train labels"),
        "empty": Bad(lambda: fit(test_images=IMAGES[:0], test_labels=LABELS[:0]), "test images"),
        "dtype": Bad(lambda: fit(train_labels=LABELS.float()), "train labels"),
        "meta": Bad(lambda: fit(train_images=meta(IMAGES)), "train images"),
        "option": Bad(lambda: fit(checkpoint_every=0), "checkpoint_every"),
    },
    "evaluate": {
        "nan": Bad(lambda: evaluate(MODEL, poke(IMAGES, NAN), LABELS), "test images"),
        "inf": Bad(lambda: evaluate(MODEL, poke(IMAGES, INF), LABELS), "test images"),
        "last_dim": Bad(lambda: evaluate(MODEL, IMAGES.reshape(3, 784)[:, :-1], LABELS), "test images"),
        "rank": Bad(lambda: evaluate(MODEL, IMAGES, LABELS[:, None]), "test labels"),
        "empty": Bad(lambda: evaluate(MODEL, IMAGES[:0], LABELS[:0]), "test images"),
        "dtype": Bad(lambda: evaluate(MODEL, IMAGES, LABELS.float()), "test labels"),
        "meta": Bad(lambda: evaluate(MODEL, meta(IMAGES), LABELS), "test images"),
        "option": Bad(lambda: evaluate(MODEL, IMAGES, LABELS, batch_size=0), "batch_size"),
    },
    "load_checkpoint": {
        "nan": "reads a file: a checkpoint holds the weights training wrote (finite, or training stopped)",
        "inf": "as nan",
        "last_dim": "reads a file: the checkpoint records its recipe, which fixes every shape",
        "rank": Bad(lambda: load_checkpoint(["runs"]), "folder"),
        "empty": Bad(lambda: load_checkpoint(""), "folder"),
        "dtype": Bad(lambda: load_checkpoint(3), "folder"),
        "meta": "reads to the CPU: no device option",
        "option": "no options",
    },
    "load_recipe": {
        "nan": "reads a file: the recipe's values are checked by its class (the rows above)",
        "inf": "as nan",
        "last_dim": "as nan",
        "rank": Bad(lambda: read(["r.json"]), "path"),
        "empty": Bad(lambda: read(""), "path"),
        "dtype": Bad(lambda: read(3), "path"),
        "meta": "reads a file: no device",
        "option": Bad(lambda: read("recipe.yaml"), r"\.json or \.toml"),
    },
}

#: Public names of assocmem.ham that take no tensor, with the reason.
NO_TENSOR_INPUT: dict[str, str] = {
    "HamRun": "a result: a run's model, optimiser and position, made by train and load_checkpoint",
    "ImageData": "a holder of tensors: train and evaluate check them where they are used (check_images)",
    "HAMClassifier": "takes a checked HamConfig (its row) and a generator",
    "build_network": "takes a checked HamConfig (its row) and a generator",
    "HAMClassifier.bound": "no input",
    "HAMClassifier.bound_state": "no input",
    "HAMClassifier.certificate": "no input",
    "HAMClassifier.load_bound_state": "restores the tensors bound_state wrote into a checkpoint (load_checkpoint)",
    "load_images": "takes a data set's name and counts: assocmem.data.load's checks (its row) name them",
}
