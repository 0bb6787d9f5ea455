"""A HAM training run on disk, for every task: checkpoints, exact resuming, metrics.json (docs/ham.md, "Recipes").

A run folder holds ``config.json`` (the recipe: :class:`~assocmem.ham.config.HamConfig` or a task's recipe,
:mod:`assocmem.ham.task_config`), ``checkpoint.safetensors`` (the weights, Adam's moments, the coupling bound's
warm start, the random generator's state as it was when the epoch's order was drawn and, for the tasks that draw
noise or masks, the state of their second generator as it is at the checkpoint, as tensors; the configuration,
the epoch, the minibatches done in it, the epoch's running sums and the history as metadata: one file, written
atomically) and ``metrics.json``. A checkpoint is written every ``checkpoint_every`` minibatches and at the end of
every epoch; resuming redraws the epoch's order from the saved generator state and skips the minibatches done, so
a run killed at any moment and resumed ends with the same weights, bit for bit, as one never interrupted (same
machine, same threads). What differs between the tasks (model, loss, evaluation) is in
:mod:`assocmem.ham.tasks`.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn

from assocmem.checks import is_count
from assocmem.files import atomic_path, read_checkpoint, write_json
from assocmem.ham.config import HamConfig, recipe_from_dict
from assocmem.ham.data import ImageData, check_images
from assocmem.ham.task_config import PatchesConfig, ReconstructConfig
from assocmem.ham.tasks import Task, task_of
from assocmem.provenance import provenance

CHECKPOINT = "checkpoint.safetensors"
CONFIG = "config.json"
METRICS = "metrics.json"
FORMAT = "assocmem.ham-run/1"
#: an epoch's running sums: loss, correct answers, images, wall seconds, this process's CPU seconds, and the loss
#: of the last minibatch (hamux's recorded measure)
EMPTY_SUMS = {"loss": 0.0, "correct": 0, "seen": 0, "seconds": 0.0, "cpu_seconds": 0.0, "last": 0.0}
Recipe = HamConfig | ReconstructConfig | PatchesConfig


@dataclass
class HamRun:
    """A model, its optimiser and where training stands (epoch, minibatches done in it, running sums);
    ``noise`` is the generator of the loss's noise or masks (None for classification)."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    config: Recipe
    generator: torch.Generator
    epoch: int = 0
    batch: int = 0
    sums: dict = field(default_factory=lambda: dict(EMPTY_SUMS))
    history: list[dict] = field(default_factory=list)
    noise: torch.Generator | None = None

    @property
    def task(self) -> Task:
        return task_of(self.config)


def new_run(config: Recipe) -> HamRun:
    """A fresh run: the model drawn from a generator seeded with ``config.seed``, the noise from ``seed + 1``."""
    task = task_of(config)
    generator = torch.Generator().manual_seed(config.seed)
    model = task.build(config, generator)
    noise = torch.Generator().manual_seed(config.seed + 1) if task.noisy else None
    return HamRun(model, torch.optim.Adam(model.parameters(), lr=config.lr), config, generator, noise=noise)


def save_checkpoint(folder: str | os.PathLike, run: HamRun, epoch_start_generator: torch.Tensor) -> Path:
    """Write ``folder/checkpoint.safetensors`` atomically."""
    path = Path(folder) / CHECKPOINT
    tensors = {f"model.{k}": v.detach().contiguous().cpu() for k, v in run.model.state_dict().items()}
    tensors |= {f"bound.{k}": v.contiguous().cpu() for k, v in run.task.state(run.model).items()}
    state = run.optimizer.state_dict()
    for i, s in state["state"].items():
        tensors |= {f"adam.{i}.{k}": torch.as_tensor(v).contiguous().cpu() for k, v in s.items()}
    tensors["generator"] = epoch_start_generator
    if run.noise is not None:
        tensors["noise"] = run.noise.get_state()
    metadata = {
        "format": FORMAT,
        "config": json.dumps(run.config.to_dict()),
        "epoch": str(run.epoch),
        "batch": str(run.batch),
        "sums": json.dumps({k: repr(v) for k, v in run.sums.items()}),
        "history": json.dumps(run.history),
        "param_groups": json.dumps(state["param_groups"]),
    }
    with atomic_path(path) as tmp:
        save_file(tensors, tmp, metadata=metadata)
    return path


def load_checkpoint(folder: str | os.PathLike) -> tuple[HamRun, torch.Tensor]:
    """The run saved in ``folder`` and the generator state its current epoch started from."""
    if not isinstance(folder, (str, os.PathLike)) or not str(folder):
        raise TypeError(
            f"load_checkpoint: folder must be a non-empty path (str or os.PathLike), got {folder!r}"
        )
    path = Path(folder) / CHECKPOINT
    if not path.is_file():
        raise FileNotFoundError(f"{folder}: no HAM checkpoint ({CHECKPOINT}); train one with --out {folder}")
    tensors, metadata = read_checkpoint(path)
    if metadata.get("format") != FORMAT:
        raise ValueError(
            f"{path}: not a HAM checkpoint (format {metadata.get('format')!r}, expected {FORMAT})"
        )
    run = new_run(recipe_from_dict(json.loads(metadata["config"]), str(path)))
    run.model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    run.task.load_state(run.model, {k[6:]: v for k, v in tensors.items() if k.startswith("bound.")})
    if run.noise is not None:
        run.noise.set_state(tensors["noise"])
    adam: dict[int, dict] = {}
    for k, v in tensors.items():
        if k.startswith("adam."):
            _, i, key = k.split(".", 2)
            adam.setdefault(int(i), {})[key] = v
    param_groups = json.loads(metadata["param_groups"])
    run.optimizer.load_state_dict({"state": adam, "param_groups": param_groups})
    run.epoch, run.batch = int(metadata["epoch"]), int(metadata["batch"])
    sums = json.loads(metadata["sums"])
    run.sums = dict(EMPTY_SUMS) | {k: type(EMPTY_SUMS.get(k, 0.0))(v) for k, v in sums.items()}
    run.history = json.loads(metadata["history"])
    return run, tensors["generator"]


def check_compatible(saved: Recipe, wanted: Recipe, folder: str | os.PathLike) -> None:
    """Refuse to resume a checkpoint made with other settings (only the recipe's ``RESUMABLE`` ones may change:
    ``epochs``, ``test_size``, ``t_max``, and ``fixed_point_size`` for the tasks that have it)."""
    a, b = saved.to_dict(), wanted.to_dict()
    a.setdefault("task", "classify")
    b.setdefault("task", "classify")
    diff = [
        f"{k}: checkpoint {a[k]!r}, now {b.get(k)!r}"
        for k in a
        if k not in type(saved).RESUMABLE and a[k] != b.get(k)
    ]
    if diff:
        raise ValueError(
            f"{folder} holds a run with a different configuration ({'; '.join(diff)}); resume with the same "
            "recipe or choose another output folder"
        )


def check_config_file(folder: str | os.PathLike, saved: Recipe) -> None:
    """Refuse a run ``folder`` whose config.json names other settings than its checkpoint: config.json records the
    settings, the checkpoint holds those a run is evaluated and resumed under, so an edit of config.json would
    otherwise be ignored in silence (the recipe's ``RESUMABLE`` settings may differ: a resume rewrites config.json
    before its next checkpoint; settings config.json lacks, as in folders from older versions, are not compared)."""
    path = Path(folder) / CONFIG
    if not path.is_file():
        return
    try:
        written = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise ValueError(f"{path}: not a readable JSON file ({err}); train rewrites it") from None
    if not isinstance(written, dict):
        raise ValueError(f"{path}: holds {type(written).__name__}, not the run's settings; train rewrites it")
    held = json.loads(json.dumps(saved.to_dict()))  # as config.json writes them (tuples as lists)
    diff = [
        f"{k}: {CONFIG} {written[k]!r}, checkpoint {v!r}"
        for k, v in held.items()
        if k in written and k not in type(saved).RESUMABLE and written[k] != v
    ]
    if diff:
        raise ValueError(
            f"{folder}: its {CONFIG} differs from its {CHECKPOINT} ({'; '.join(diff)}); a run is evaluated under "
            f"the settings its checkpoint holds, which {CONFIG} only records, so an edited {CONFIG} would be "
            f"ignored: restore it (train writes it), or load the run in Python (assocmem.ham.load_checkpoint) and "
            "change run.model.config there"
        )


def check_schedule(saved: Recipe, wanted: Recipe, done: int, folder: str | os.PathLike) -> None:
    """A decaying rate is laid over the recipe's epochs: a resume that would train under other ``epochs`` would
    jump along it, so it is refused (fewer epochs than those done, which only writes the final metrics, pass)."""
    schedule = getattr(saved, "lr_schedule", "constant")
    if schedule != "constant" and wanted.epochs != saved.epochs and wanted.epochs > done:
        raise ValueError(
            f"{folder} holds a run whose lr_schedule={schedule!r} decays over epochs={saved.epochs}; resuming with "
            f"epochs={wanted.epochs} would change the rate along the way: keep epochs={saved.epochs} (or at most "
            f"{done}, the epochs done, to write the final metrics)"
        )


def check_folder(folder: str | os.PathLike, resume: bool) -> str | None:
    """What in a run ``folder`` shows a run was started there (its checkpoint, else its config.json, else None),
    checked against ``resume``: a new run needs a folder without one, a resumed run a folder with one."""
    found = next((name for name in (CHECKPOINT, CONFIG) if (Path(folder) / name).is_file()), None)
    if found and not resume:
        raise ValueError(
            f"{folder} already holds a HAM run ({found}); pass --resume to continue it or choose another output "
            "folder"
        )
    if resume and not found:
        raise ValueError(
            f"{folder} holds no HAM run to resume (no {CHECKPOINT} or {CONFIG}); leave out --resume to start one"
        )
    return found


def metrics(run: HamRun, final: dict | None = None) -> dict:
    """metrics.json: the latest test headline (the accuracy at the fixed point; a task's error), ``final`` when
    done, per epoch, the recipe."""
    headline = run.task.headline
    return {
        f"test_{headline}": run.history[-1]["test"][headline] if run.history else None,
        "epochs_done": run.epoch,
        **({"final": final} if final is not None else {}),
        "per_epoch": run.history,
        "config": run.config.to_dict(),
        "provenance": provenance(),
    }


def train(
    config: Recipe,
    data: ImageData,
    out: str | os.PathLike | None = None,
    *,
    resume: bool = False,
    checkpoint_every: int = 100,
    on_batch: Callable[[int, int, float], None] | None = None,
    on_epoch: Callable[[dict], None] | None = None,
) -> HamRun:
    """Train to ``config.epochs`` epochs: Adam on the task's loss (classification: the cross-entropy of the labels
    at the fixed point; reconstruction and patches: the squared error after the recipe's descent steps).

    ``on_batch(batch, batches, loss)`` after every minibatch; ``on_epoch(record)`` after every epoch (its test
    evaluation at the fixed point, strict: a network that does not settle stops the run with the error).
    """
    if not isinstance(data, ImageData):
        raise TypeError(f"train: data must be an ImageData, got {type(data).__name__}")
    for part in ("train", "test"):
        check_images(getattr(data, f"{part}_images"), getattr(data, f"{part}_labels"), "train", part)
    if not is_count(checkpoint_every):
        raise ValueError(f"train: checkpoint_every must be a positive int, got {checkpoint_every!r}")
    folder = Path(out) if out is not None else None
    run, start_state = None, None
    if resume and folder is None:
        raise ValueError("resume=True needs the run folder out to resume from")
    if folder is not None and check_folder(folder, resume) == CHECKPOINT:
        run, start_state = load_checkpoint(folder)
        check_compatible(run.config, config, folder)
        check_schedule(run.config, config, run.epoch, folder)
        run.config = config  # the settings a resume may change reach the relaxations
        if isinstance(run.model, nn.Module) and hasattr(run.model, "config"):
            run.model.config = config
    if run is None:
        run = new_run(config)
    if folder is not None:
        write_json(folder / CONFIG, {**config.to_dict(), "provenance": provenance()})
    n = len(data.train_labels)
    batches = (n + config.batch_size - 1) // config.batch_size
    dtype = getattr(torch, config.dtype)
    while run.epoch < config.epochs:
        if start_state is not None:
            run.generator.set_state(start_state)
        start_state = run.generator.get_state()
        order = torch.randperm(n, generator=run.generator)
        for b in range(run.batch, batches):
            t, cpu = time.perf_counter(), time.process_time()
            idx = order[b * config.batch_size : (b + 1) * config.batch_size]
            x, y = data.train_images[idx].to(dtype), data.train_labels[idx]
            loss, correct = run.task.loss(run.model, config, x, y, run.noise)
            run.optimizer.zero_grad()
            loss.backward()
            if getattr(config, "lr_schedule", "constant") != "constant":
                for group in run.optimizer.param_groups:
                    group["lr"] = learning_rate(config, run.epoch * batches + b, config.epochs * batches)
            run.optimizer.step()
            run.task.after_step(run.model)
            run.batch = b + 1
            run.sums["loss"] += loss.item() * len(y)
            run.sums["last"] = loss.item()
            run.sums["correct"] += correct or 0
            run.sums["seen"] += len(y)
            run.sums["seconds"] += time.perf_counter() - t
            run.sums["cpu_seconds"] += time.process_time() - cpu
            if on_batch is not None:
                on_batch(run.batch, batches, loss.item())
            if folder is not None and run.batch % checkpoint_every == 0 and run.batch < batches:
                save_checkpoint(folder, run, start_state)
        t = time.perf_counter()
        test = run.task.evaluate(run.model, config, data)
        record = {
            "epoch": run.epoch + 1,
            "train_loss": run.sums["loss"] / run.sums["seen"],
            **(
                {"train_accuracy": run.sums["correct"] / run.sums["seen"]}
                if run.task.name == "classify"
                else {"last_minibatch_loss": run.sums["last"]}
            ),
            "seconds": run.sums["seconds"],
            "cpu_seconds": run.sums["cpu_seconds"],
            "test": test,
            "eval_seconds": time.perf_counter() - t,
        }
        run.history.append(record)
        run.epoch, run.batch = run.epoch + 1, 0
        run.sums = dict(EMPTY_SUMS)
        start_state = None
        if folder is not None:
            save_checkpoint(folder, run, run.generator.get_state())
            write_json(folder / METRICS, metrics(run))
        if on_epoch is not None:
            on_epoch(record)
    if folder is not None:
        write_json(folder / METRICS, metrics(run, final_metrics(run)))
    return run


def learning_rate(config: Recipe, done: int, total: int) -> float:
    """Adam's rate for the minibatch after ``done`` of ``total``: ``config.lr``, or with ``lr_schedule="cosine"``
    ``lr (1 + cos(pi done / total)) / 2`` (a function of the position alone, so a resumed run takes the same)."""
    if getattr(config, "lr_schedule", "constant") == "constant":
        return config.lr
    return config.lr * 0.5 * (1.0 + math.cos(math.pi * min(done / total, 1.0)))


def final_metrics(run: HamRun) -> dict:
    last = run.history[-1] if run.history else {}
    seconds = [r["seconds"] for r in run.history]
    return {
        "epoch": run.epoch,
        "test": last.get("test"),
        "train_loss": last.get("train_loss"),
        "seconds_per_epoch": sum(seconds) / max(1, len(seconds)),
        "cpu_seconds_per_epoch": sum(r.get("cpu_seconds", 0.0) for r in run.history) / max(1, len(seconds)),
        "bounded_below": run.task.certificate(run.model),
    }
