"""A classifier training run on disk: checkpoints, exact resuming, and metrics.json.

A run folder holds ``config.json`` (the :class:`TrainConfig`), ``checkpoint.safetensors`` (the memories, the
momentum ``V`` and the random generator's state as tensors; the configuration, the epoch and the per-epoch
history as its metadata: one file, written atomically, so a checkpoint is never half old, half new) and
``metrics.json`` (per-epoch and final errors, loss, seconds). Resuming restores all of it, so a run killed
after any epoch and resumed ends with the same weights, bit for bit, as one never interrupted (same machine,
same number of threads); a checkpoint made with a different configuration is refused with the differences.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor

from assocmem.checks import is_count
from assocmem.classifier.data import Data
from assocmem.classifier.model import DAMClassifier
from assocmem.classifier.training import (
    EpochCallback,
    Step,
    TrainConfig,
    targets,
    train_epoch,
)
from assocmem.files import atomic_path, write_json

CHECKPOINT = "checkpoint.safetensors"
CONFIG = "config.json"
METRICS = "metrics.json"
FORMAT = "assocmem.classifier-run/1"


@dataclass
class Run:
    """A model with its training state: configuration, epochs done, history, momentum, generator state."""

    model: DAMClassifier
    config: TrainConfig
    epoch: int = 0
    history: list[dict] = field(default_factory=list)
    velocity: Tensor | None = None
    velocity_log_scale: Tensor | None = None
    generator_state: Tensor | None = None

    @property
    def test_error(self) -> float | None:
        return self.history[-1]["test_error"] if self.history else None


def save_checkpoint(folder: str | os.PathLike, run: Run) -> Path:
    """Write ``folder/checkpoint.safetensors`` atomically (tensors + JSON metadata)."""
    path = Path(folder) / CHECKPOINT
    tensors = {"memories": run.model.memories.detach().contiguous().cpu()}
    if run.velocity is not None:
        tensors["velocity"] = run.velocity.contiguous().cpu()
        tensors["velocity_log_scale"] = run.velocity_log_scale.contiguous().cpu()
    if run.generator_state is not None:
        tensors["generator"] = run.generator_state.cpu()
    metadata = {
        "format": FORMAT,
        "config": json.dumps(run.config.to_dict()),
        "epoch": str(run.epoch),
        "temperature": repr(run.model.temperature),
        "history": json.dumps(run.history),
    }
    with atomic_path(path) as tmp:
        save_file(tensors, tmp, metadata=metadata)
    return path


def load_run(
    folder: str | os.PathLike, device: torch.device | str | None = None, compile: bool = False
) -> Run:
    """The run saved in ``folder`` (its last checkpoint); a clear error when it is missing or corrupt."""
    path = Path(folder) / CHECKPOINT
    if not path.is_file():
        raise FileNotFoundError(
            f"{folder}: no classifier checkpoint ({CHECKPOINT}); train one with --out {folder}"
        )
    try:
        tensors = load_file(path)
        from safetensors import safe_open

        with safe_open(path, framework="pt") as f:
            metadata = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as err:
        raise ValueError(
            f"{path}: corrupt or truncated checkpoint ({err}); delete it to start again"
        ) from err
    if metadata.get("format") != FORMAT or "memories" not in tensors:
        raise ValueError(
            f"{path}: not a classifier checkpoint (format {metadata.get('format')!r}, expected {FORMAT})"
        )
    config = TrainConfig.from_dict(json.loads(metadata["config"]))
    model = DAMClassifier(
        tensors["memories"],
        config.pixels,
        config.classes,
        n=config.n,
        F=config.F,
        temperature=float(metadata["temperature"]),
        class_state=config.class_state,
        dtype=getattr(torch, config.dtype),
        device=device,
        compile=compile,
    )
    return Run(
        model,
        config,
        int(metadata["epoch"]),
        json.loads(metadata["history"]),
        tensors.get("velocity"),
        tensors.get("velocity_log_scale"),
        tensors.get("generator"),
    )


def check_compatible(saved: TrainConfig, wanted: TrainConfig, folder: str | os.PathLike) -> None:
    """Refuse to resume a checkpoint made with different settings (only ``epochs`` may change)."""
    a, b = saved.to_dict(), wanted.to_dict()
    diff = [
        f"{k}: checkpoint {a[k]!r}, now {b[k]!r}"
        for k in a
        if k not in TrainConfig.RESUMABLE and a[k] != b[k]
    ]
    if diff:
        raise ValueError(
            f"{folder} holds a run with a different configuration ({'; '.join(diff)}); resume with the same "
            "settings or choose another output folder"
        )


def metrics(run: Run, final: dict | None = None) -> dict:
    """The content of metrics.json: top-level ``test_error`` (the latest), ``final`` when done, per epoch."""
    out: dict = {"test_error": run.test_error, "epochs_done": run.epoch}
    if final is not None:
        out["final"] = final
    out["per_epoch"] = run.history
    out["config"] = run.config.to_dict()
    return out


def train(
    config: TrainConfig,
    data: Data,
    out: str | os.PathLike | None = None,
    *,
    resume: bool = False,
    checkpoint_every: int = 10,
    compile: bool = False,
    device: torch.device | str | None = None,
    callback: EpochCallback | None = None,
) -> Run:
    """Train a classifier with KH16's algorithm to ``config.epochs`` epochs; returns the finished run.

    With ``out``, writes ``config.json``, a checkpoint every ``checkpoint_every`` epochs and at the end, and
    ``metrics.json`` after every epoch. ``resume=True`` continues the run in ``out`` from its checkpoint (the
    configuration must match; ``epochs`` may grow); without it an existing run in ``out`` is an error.
    ``callback(record)`` is called after every epoch. ``compile`` fuses the elementwise work (torch.compile).
    """
    if not is_count(checkpoint_every):
        raise ValueError(f"train: checkpoint_every must be a positive int, got {checkpoint_every!r}")
    folder = Path(out) if out is not None else None
    dtype = getattr(torch, config.dtype)
    data = Data(
        *(t.to(device=device, dtype=dtype if t.is_floating_point() else t.dtype) for t in vars(data).values())
    )
    _check_data(data, config)
    generator = torch.Generator().manual_seed(config.seed)
    run = None
    if folder is not None and (folder / CHECKPOINT).exists():
        if not resume:
            raise ValueError(
                f"{folder} already holds a classifier run; pass --resume (resume=True) to continue it or choose "
                "another output folder"
            )
        run = load_run(folder, device=device, compile=compile)
        check_compatible(run.config, config, folder)
        run.config = config
        if run.generator_state is not None:
            generator.set_state(run.generator_state)
    if run is None:
        run = Run(config.model(generator, compile=compile).to(device), config)
    if folder is not None:
        write_json(folder / CONFIG, config.to_dict())
    step = Step(run.model, config, run.velocity, run.velocity_log_scale)
    t_all = targets(data.train_labels, config.classes, dtype)
    while run.epoch < config.epochs:
        record = train_epoch(step, data, t_all, config, run.epoch, generator)
        run.epoch += 1
        run.history.append(record)
        run.velocity, run.velocity_log_scale = step.velocity, step.log_scale
        run.generator_state = generator.get_state()
        if folder is not None:
            if run.epoch % checkpoint_every == 0 or run.epoch == config.epochs:
                save_checkpoint(folder, run)
            write_json(folder / METRICS, metrics(run))
        if callback is not None:
            callback(record)
    if folder is not None:
        write_json(folder / METRICS, metrics(run, final_metrics(run, data)))
    return run


def final_metrics(run: Run, data: Data) -> dict:
    """Errors of the final weights on the whole training and test sets, the last loss, the training time."""
    start = time.perf_counter()
    train_error = run.model.error(data.train_images, data.train_labels)
    test_error = run.model.error(data.test_images, data.test_labels)
    seconds = sum(r["seconds"] for r in run.history)
    return {
        "epoch": run.epoch,
        "train_error": train_error,
        "test_error": test_error,
        "loss": run.history[-1]["loss"] if run.history else None,
        "seconds": seconds,
        "seconds_per_epoch": seconds / max(1, len(run.history)),
        "eval_seconds": time.perf_counter() - start,
    }


def _check_data(data: Data, config: TrainConfig) -> None:
    for split in ("train", "test"):
        images, labels = getattr(data, f"{split}_images"), getattr(data, f"{split}_labels")
        if images.dim() != 2 or images.shape[1] != config.pixels:
            raise ValueError(
                f"train: {split} images must have shape (N, {config.pixels}) (pixels in [-1, 1]), got "
                f"{tuple(images.shape)}"
            )
        if labels.shape != images.shape[:1]:
            raise ValueError(
                f"train: {split} labels must have shape ({images.shape[0]},), got {tuple(labels.shape)}"
            )
