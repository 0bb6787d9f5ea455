"""A classifier training run on disk: the training loop with its checkpoints, exact resuming, and metrics.json.

A run folder holds ``config.json`` (the :class:`TrainConfig` and the provenance), ``checkpoint.safetensors``
(:mod:`.checkpoint`: the memories, the momentum, the random generator's state, the history, written atomically)
and ``metrics.json`` (per-epoch and final errors, loss, seconds, provenance). Resuming restores all of it: a run
killed at any moment (``kill -9`` included) and resumed from its last checkpoint ends with the same weights, bit
for bit, as one never interrupted, provided it continues with the same arithmetic (kernels, threads, device,
CPU, torch version; docs/classifier.md). A checkpoint made with a different configuration or other kernels is
refused with the differences; other threads, device, CPU or torch version give a warning. A run whose loss or
memories become non-finite stops at once (:class:`~assocmem.classifier.training.DivergenceError`), leaving the last
good checkpoint in place and the divergence in metrics.json.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import torch

from assocmem.checks import is_count, require_tensor
from assocmem.classifier.checkpoint import (
    CHECKPOINT,
    CONFIG,
    Run,
    arithmetic,
    check_compatible,
    check_device,
    check_folder_path,
    check_record,
    load_run,
    save_checkpoint,
)
from assocmem.classifier.data import Data
from assocmem.classifier.training import (
    DivergenceError,
    EpochCallback,
    Step,
    TrainConfig,
    check_data,
    targets,
    train_epoch,
)
from assocmem.files import write_json
from assocmem.provenance import provenance

METRICS = "metrics.json"

__all__ = ["CHECKPOINT", "CONFIG", "METRICS", "Run", "check_folder", "load_run", "started", "train"]


def started(folder: str | os.PathLike) -> str | None:
    """What in ``folder`` shows a classifier run was started there (its checkpoint or config.json), or None."""
    for name in (CHECKPOINT, CONFIG):
        if (Path(folder) / name).is_file():
            return name
    return None


def check_folder(folder: str | os.PathLike, resume: bool) -> str | None:
    """What of a run ``folder`` holds (:func:`started`), checked against ``resume``: a new run needs a folder
    without one, a resumed run a folder with one."""
    found = started(folder)
    if found and not resume:
        raise ValueError(
            f"{folder} already holds a classifier run ({found}); pass --resume (resume=True) to continue it or "
            "choose another output folder"
        )
    if resume and not found:
        raise ValueError(
            f"{folder} holds no classifier run to resume (no {CHECKPOINT} or {CONFIG}); leave out --resume "
            "(resume=False) to start one"
        )
    return found


def check_arithmetic(run: Run, now: dict, folder: str | os.PathLike) -> None:
    """Refuse to resume with other kernels than the checkpoint's; warn about other threads, device, CPU or torch."""
    saved = run.arithmetic
    if not saved:
        return
    if saved.get("kernels") != now["kernels"]:
        raise ValueError(
            f"{folder} was trained with {saved.get('kernels')} kernels and would continue with {now['kernels']} "
            "ones (--no-compile / compile=, or no C++ compiler here). The two round differently, so the resumed "
            "weights would not match an uninterrupted run: resume with the kernels the run started with"
        )
    changed = [
        f"{k} {saved[k]} -> {now[k]}"
        for k in ("threads", "device", "cpu", "torch")
        if k in saved and saved[k] != now[k]
    ]
    if changed:
        warnings.warn(
            f"resuming {folder} with other arithmetic ({', '.join(changed)}): the run continues correctly, but its "
            "weights may differ in the last bits from a run never interrupted",
            RuntimeWarning,
            stacklevel=3,
        )


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
    on_start: Callable[[Run], None] | None = None,
) -> Run:
    """Train a classifier with KH16's algorithm to ``config.epochs`` epochs; returns the finished run.

    With ``out``, writes ``config.json``, a checkpoint every ``checkpoint_every`` epochs and at the end, and
    ``metrics.json`` after every epoch. ``resume=True`` continues the run in ``out`` from its checkpoint (the
    configuration must match; ``epochs`` may grow; a run killed before its first checkpoint starts again from
    epoch 0); ``out`` must hold a run. Without it an existing run in ``out`` is an error. ``callback(record)`` is
    called after every epoch, ``on_start(run)`` once the run is opened and checked, before the first epoch.
    ``compile`` fuses the elementwise work (numba loops for ``n`` from 2 to 6, else torch.compile). Raises
    :class:`~assocmem.classifier.training.DivergenceError` when the loss or the memories become non-finite.
    """
    if not isinstance(config, TrainConfig):
        raise TypeError(f"train: config must be a TrainConfig, got {type(config).__name__}")
    if not isinstance(data, Data):
        raise TypeError(f"train: data must be an assocmem.classifier.Data, got {type(data).__name__}")
    if not is_count(checkpoint_every):
        raise ValueError(f"train: checkpoint_every must be a positive int, got {checkpoint_every!r}")
    for name, flag in (("resume", resume), ("compile", compile)):
        if not isinstance(flag, bool):
            raise TypeError(f"train: {name} must be True or False, got {flag!r}")
    for name, f in (("callback", callback), ("on_start", on_start)):
        if f is not None and not callable(f):
            raise TypeError(f"train: {name} must be callable or None, got {f!r}")
    device = check_device(device, "train")
    folder = check_folder_path(out, "out", "train") if out is not None else None
    if resume and folder is None:
        raise ValueError("train: resume=True needs out, the folder of the run to continue")
    dtype = getattr(torch, config.dtype)
    for name, t in vars(data).items():
        require_tensor(t, name.replace("_", " "), "train", floating=False)
    data = Data(
        *(t.to(device=device, dtype=dtype if t.is_floating_point() else t.dtype) for t in vars(data).values())
    )
    check_data(data, config, "train")
    generator = torch.Generator().manual_seed(config.seed)
    run = None
    found = check_folder(folder, resume) if folder is not None else None
    if found == CHECKPOINT:
        run = load_run(folder, device=device, compile=compile)
        check_compatible(run.config, config, folder)
        check_arithmetic(run, arithmetic(run.model), folder)
        run.config = config
        if run.generator_state is not None:
            generator.set_state(run.generator_state)
    elif found == CONFIG:  # killed before its first checkpoint: the same run again from epoch 0
        check_record(folder, config, against="options")
    if run is None:
        run = Run(config.model(generator, compile=compile).to(device), config)
    run.arithmetic = arithmetic(run.model)
    if on_start is not None:
        on_start(run)
    if folder is not None:
        write_json(folder / CONFIG, {**config.to_dict(), "provenance": provenance()})
    step = Step(run.model, config, run.velocity, run.velocity_log_scale)
    t_all = targets(data.train_labels, config.classes, dtype)
    saved = run.epoch if found == CHECKPOINT else None  # the epoch of the last good checkpoint
    while run.epoch < config.epochs:
        try:
            record = train_epoch(step, data, t_all, config, run.epoch, generator)
        except DivergenceError as err:
            if folder is not None:
                kept = (
                    f"{folder / CHECKPOINT} holds the last good epoch, {saved}"
                    if saved is not None
                    else "no checkpoint was written"
                )
                err.note = f"Stopped: {kept}; {folder / METRICS} records where training diverged"
                write_json(folder / METRICS, metrics(run, diverged=_divergence(err, saved)))
            raise
        run.epoch += 1
        run.history.append(record)
        run.velocity, run.velocity_log_scale = step.velocity, step.log_scale
        run.generator_state = generator.get_state()
        if folder is not None:
            if run.epoch % checkpoint_every == 0 or run.epoch == config.epochs:
                save_checkpoint(folder, run)
                saved = run.epoch
            write_json(folder / METRICS, metrics(run))
        if callback is not None:
            callback(record)
    if folder is not None:
        write_json(folder / METRICS, metrics(run, final_metrics(run, data)))
    return run


def _divergence(err: DivergenceError, checkpoint_epoch: int | None) -> dict:
    return {
        "epoch": err.epoch,
        "minibatch": err.minibatch,
        "loss": err.loss,
        "message": str(err),
        "checkpoint_epoch": checkpoint_epoch,
    }


def metrics(run: Run, final: dict | None = None, diverged: dict | None = None) -> dict:
    """The content of metrics.json: top-level ``test_error`` (the latest), ``final`` when done, ``diverged`` when
    training stopped on a non-finite loss or memories, per epoch, the configuration and the provenance."""
    out: dict = {"test_error": run.test_error, "epochs_done": run.epoch}
    if final is not None:
        out["final"] = final
    if diverged is not None:
        out["diverged"] = diverged
    out["per_epoch"] = run.history
    out["config"] = run.config.to_dict()
    out["provenance"] = provenance()
    return out


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
