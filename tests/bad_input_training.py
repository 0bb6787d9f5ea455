"""Rows of the bad-input table (tests/test_bad_input.py) for training the classifier (assocmem.classifier's
``TrainConfig``, ``Run``, ``train``, ``train_epoch``, ``load_run``): bad tensors in the data, bad options and paths.
The command line that drives them has its own table (tests/test_cli_bad_input.py)."""

from __future__ import annotations

import tempfile

import torch

from assocmem.classifier import Data, Run, TrainConfig, load_run, train, train_epoch
from assocmem.classifier.training import Step, targets
from tests.bad_input_cases import INF, NAN, Bad, Result, meta, poke

P, C, N = 6, 2, 8  # pixels, classes, training images
G = torch.Generator().manual_seed(0)
IMAGES, TEST = torch.rand(N, P, generator=G) * 2 - 1, torch.rand(4, P, generator=G) * 2 - 1
LABELS, TEST_LABELS = torch.arange(N) % C, torch.arange(4) % C
NUMBERS = "takes numbers, no tensor"
CHECKED = "the configuration's values, checked when it is made (the TrainConfig row)"


def config(**kw: object) -> TrainConfig:
    base = {"memories": 4, "pixels": P, "classes": C, "batch_size": 4, "epochs": 1, "ramp_epochs": 0}
    base["temperature"] = base["final_temperature"] = 2.0
    return TrainConfig(**{**base, **kw})


def data(**kw: torch.Tensor) -> Data:
    return Data(
        kw.get("train_images", IMAGES),
        kw.get("train_labels", LABELS),
        kw.get("test_images", TEST),
        kw.get("test_labels", TEST_LABELS),
    )


def run(**kw: object) -> Run:
    cfg = config()
    return Run(cfg.model(torch.Generator().manual_seed(0)), cfg, **kw)


def fit(d: Data | None = None, **kw: object) -> Run:
    """``train`` on the tiny data set, in memory unless ``out`` is given."""
    return train(config(), data() if d is None else d, **kw)


def epoch(d: Data | None = None, t_all: torch.Tensor | None = None, at: object = 0) -> dict:
    cfg = config()
    step = Step(cfg.model(torch.Generator().manual_seed(0)), cfg)
    t_all = targets(LABELS, C) if t_all is None else t_all
    return train_epoch(step, data() if d is None else d, t_all, cfg, at, torch.Generator().manual_seed(0))


NO_RUN = "no-such-run"  # the options are checked before the folder is read: nothing is created or read


def corrupt_checkpoint() -> Run:
    with tempfile.TemporaryDirectory(prefix="assocmem-bad-input-") as folder:
        with open(f"{folder}/checkpoint.safetensors", "wb") as f:
            f.write(b"not a checkpoint")
        return load_run(folder)


K_P = (4, P)  # the memories' shape
TABLE: dict[str, dict[str, Bad | Result | str]] = {
    "TrainConfig": {
        "nan": Bad(lambda: config(lr=NAN), "lr"),
        "inf": Bad(lambda: config(init_std=INF), "init_std"),
        "last_dim": Bad(lambda: config(pixels=0), "pixels"),
        "rank": Bad(lambda: config(n=torch.ones(2)), r"\bn\b"),
        "empty": Bad(lambda: config(train_size=0), "train_size"),
        "dtype": Bad(lambda: config(dtype="int64"), "dtype"),
        "meta": Bad(lambda: config(n=torch.tensor(3.0, device="meta")), r"\bn\b"),
        "option": Bad(lambda: config(F="relu"), r"\bF\b"),
    },
    "TrainConfig.for_degree": {
        "nan": Bad(lambda: TrainConfig.for_degree(NAN), r"\bn\b"),
        "inf": Bad(lambda: TrainConfig.for_degree(INF), r"\bn\b"),
        "last_dim": Bad(lambda: TrainConfig.for_degree(3, pixels=0), "pixels"),
        "rank": Bad(lambda: TrainConfig.for_degree(torch.ones(2)), r"\bn\b"),
        "empty": Bad(lambda: TrainConfig.for_degree(3, train_size=0), "train_size"),
        "dtype": Bad(lambda: TrainConfig.for_degree("3"), r"\bn\b"),
        "meta": Bad(lambda: TrainConfig.for_degree(torch.tensor(3.0, device="meta")), r"\bn\b"),
        "option": Bad(lambda: TrainConfig.for_degree(30, momentum=1.0), "momentum"),
    },
    "TrainConfig.from_dict": {
        "nan": Bad(lambda: TrainConfig.from_dict({"class_state": NAN}), "class_state"),
        "inf": Bad(lambda: TrainConfig.from_dict({"temperature": INF}), "temperature"),
        "last_dim": Bad(lambda: TrainConfig.from_dict({"classes": 0}), "classes"),
        "rank": Bad(lambda: TrainConfig.from_dict([("lr", 0.1)]), r"\bd must be a dict"),
        "empty": Result(
            lambda: TrainConfig.from_dict({}), lambda c: c == TrainConfig(), "no settings: the defaults"
        ),
        "dtype": Bad(lambda: TrainConfig.from_dict({"dtype": "float16"}), "dtype"),
        "meta": NUMBERS,
        "option": Bad(lambda: TrainConfig.from_dict({"nn": 3}), "unknown settings"),
    },
    "TrainConfig.model": {
        **dict.fromkeys(("nan", "inf", "last_dim", "rank", "empty", "meta"), CHECKED),
        "dtype": Bad(lambda: config().model(generator=3), "generator"),
        "option": Bad(lambda: config().model(compile="yes"), "compile"),
    },
    "Run": {
        "nan": Bad(lambda: run(velocity=torch.full(K_P, NAN)), "velocity"),
        "inf": Bad(lambda: run(velocity_log_scale=torch.full((4,), INF)), "velocity_log_scale"),
        "last_dim": Bad(lambda: run(velocity=torch.zeros(4, P - 1)), "velocity"),
        "rank": Bad(lambda: run(velocity=torch.zeros(4 * P)), "velocity"),
        "empty": Bad(lambda: run(velocity=torch.zeros(0, P)), "velocity"),
        "dtype": Bad(lambda: run(velocity=torch.zeros(K_P, dtype=torch.int64)), "velocity"),
        "meta": Bad(lambda: run(velocity=meta(torch.zeros(K_P))), "velocity"),
        "option": Bad(lambda: run(epoch=-1), "epoch"),
    },
    "assocmem.classifier.run.train": {  # (ham has a train too: keyed with its module)
        "nan": Bad(lambda: fit(data(train_images=poke(IMAGES, NAN))), "train images"),
        "inf": Bad(lambda: fit(data(test_images=poke(TEST, INF, 5))), "test images"),
        "last_dim": Bad(lambda: fit(data(train_images=IMAGES[:, :-1])), "train images"),
        "rank": Bad(lambda: fit(data(train_labels=LABELS[:, None])), "train labels"),
        "empty": Bad(lambda: fit(data(test_images=TEST[:0], test_labels=TEST_LABELS[:0])), "test images"),
        "dtype": Bad(lambda: fit(data(train_labels=LABELS.float())), "train labels"),
        "meta": Bad(lambda: fit(data(train_images=meta(IMAGES))), "train images"),
        "option": Bad(lambda: fit(checkpoint_every=0), "checkpoint_every"),
    },
    "train_epoch": {
        "nan": Bad(lambda: epoch(data(train_images=poke(IMAGES, NAN, 7))), "train images"),
        "inf": Bad(lambda: epoch(data(test_images=poke(TEST, -INF))), "test images"),
        "last_dim": Bad(lambda: epoch(t_all=torch.zeros(N, C + 1)), "t_all"),
        "rank": Bad(lambda: epoch(t_all=torch.zeros(N)), "t_all"),
        "empty": Bad(
            lambda: epoch(data(train_images=IMAGES[:0], train_labels=LABELS[:0])), "training images"
        ),
        "dtype": Bad(lambda: epoch(t_all=targets(LABELS, C, torch.float64)), "t_all"),
        "meta": Bad(lambda: epoch(t_all=meta(targets(LABELS, C))), "t_all"),
        "option": Bad(lambda: epoch(at=-1), "epoch"),
    },
    "load_run": {
        "nan": "reads a file: save_checkpoint writes finite weights only, and a damaged file is refused (OPTIONS)",
        "inf": "reads a file (as nan)",
        "last_dim": "reads a file: the checkpoint records its sizes",
        "rank": Bad(lambda: load_run(["runs"]), "folder"),
        "empty": Bad(lambda: load_run(""), "folder"),
        "dtype": Bad(lambda: load_run(3), "folder"),
        "meta": Bad(lambda: load_run(NO_RUN, device="meta"), "device"),
        "option": Bad(lambda: load_run(NO_RUN, device="foo"), "device"),
    },
}
for name in ("lr_at", "temperature_at"):
    TABLE[f"TrainConfig.{name}"] = {
        "nan": Bad(lambda name=name: getattr(config(), name)(NAN), "epoch"),
        "inf": Bad(lambda name=name: getattr(config(), name)(INF), "epoch"),
        "last_dim": NUMBERS,
        "rank": Bad(lambda name=name: getattr(config(), name)(torch.tensor([1])), "epoch"),
        "empty": NUMBERS,
        "dtype": Bad(lambda name=name: getattr(config(), name)(1.5), "epoch"),
        "meta": NUMBERS,
        "option": Bad(lambda name=name: getattr(config(), name)(-1), "epoch"),
    }


#: Options and paths beyond each row's ``option`` cell.
OPTIONS: dict[str, Bad] = {
    "train-out": Bad(lambda: fit(out=""), r"\bout\b"),
    "train-out-type": Bad(lambda: fit(out=3), r"\bout\b"),
    "train-device": Bad(lambda: fit(device="foo"), "device"),
    "train-meta-device": Bad(lambda: fit(device="meta"), "device"),
    "train-resume": Bad(lambda: fit(resume=1), "resume"),
    "train-resume-without-out": Bad(lambda: fit(resume=True), "resume"),
    "train-callback": Bad(lambda: fit(callback=3), "callback"),
    "train-config": Bad(lambda: train({"epochs": 1}, data()), "config"),
    "train-data": Bad(lambda: train(config(), (IMAGES, LABELS, TEST, TEST_LABELS)), "data"),
    "train-labels-device": Bad(lambda: fit(data(test_labels=meta(TEST_LABELS))), "test labels"),
    "train_epoch-step": Bad(
        lambda: train_epoch(None, data(), targets(LABELS, C), config(), 0, torch.Generator()), "step"
    ),
    "train_epoch-generator": Bad(
        lambda: train_epoch(
            Step(*(lambda c: (c.model(), c))(config())), data(), targets(LABELS, C), config(), 0, 0
        ),
        "generator",
    ),
    "load_run-compile": Bad(lambda: load_run(NO_RUN, compile="no"), "compile"),
    "load_run-corrupt": Bad(lambda: corrupt_checkpoint(), "corrupt"),
    "Run-model": Bad(lambda: Run(None, config()), "model"),
    "Run-config": Bad(lambda: Run(config().model(), {}), "config"),
    "Run-history": Bad(lambda: run(history={}), "history"),
    "TrainConfig-seed": Bad(lambda: config(seed=-1), "seed"),
    "TrainConfig-balanced": Bad(lambda: config(balanced="yes"), "balanced"),
    "TrainConfig-momentum": Bad(lambda: config(momentum=NAN), "momentum"),
    "TrainConfig-lr_decay": Bad(lambda: config(lr_decay="0.9"), "lr_decay"),
    "TrainConfig-init_mean": Bad(lambda: config(init_mean=INF), "init_mean"),
}
