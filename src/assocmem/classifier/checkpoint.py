"""A classifier run's checkpoint and record on disk: ``checkpoint.safetensors`` and ``config.json``.

The checkpoint is one safetensors file: the memories, the momentum ``V`` (with its per-memory log-scale) and the
random generator's state as tensors; the configuration, the epoch, the per-epoch history, the provenance
(:func:`assocmem.provenance.provenance`) and the *arithmetic* (kernels, threads, device, CPU, torch) as its
metadata. It is written atomically and flushed to the disk (:func:`assocmem.files.atomic_path`), so it is never
half old, half new, and it is never written with non-finite weights.

``config.json`` is the human-readable record of the run's settings (and the provenance of the process that
wrote it). It is not an input: a ``config.json`` that differs from the checkpoint (an edit) is refused with the
keys that differ, whenever the run is loaded (``eval``, ``prototypes``, ``--resume``).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import Tensor

from assocmem.checks import is_count, require_tensor, value_checks_enabled, where_not_finite
from assocmem.classifier.model import DAMClassifier
from assocmem.classifier.training import TrainConfig
from assocmem.files import atomic_path, read_checkpoint, to_json
from assocmem.provenance import provenance

CHECKPOINT = "checkpoint.safetensors"
CONFIG = "config.json"
FORMAT = "assocmem.classifier-run/1"
#: The keys of ``config.json`` beside the configuration's fields.
RECORD_KEYS = ("provenance",)


@dataclass
class Run:
    """A model with its training state: configuration, epochs done, history, momentum, generator state.

    ``arithmetic`` is what the checkpoint's numbers were computed with (``kernels``, ``threads``, ``device``,
    ``cpu``, ``torch``); a run resumed with the same arithmetic continues bit for bit.
    """

    model: DAMClassifier
    config: TrainConfig
    epoch: int = 0
    history: list[dict] = field(default_factory=list)
    velocity: Tensor | None = None
    velocity_log_scale: Tensor | None = None
    generator_state: Tensor | None = None
    arithmetic: dict | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.model, DAMClassifier):
            raise TypeError(f"Run: model must be a DAMClassifier, got {type(self.model).__name__}")
        if not isinstance(self.config, TrainConfig):
            raise TypeError(f"Run: config must be a TrainConfig, got {type(self.config).__name__}")
        if not is_count(self.epoch, 0):
            raise ValueError(f"Run: epoch must be an int >= 0 (epochs done), got {self.epoch!r}")
        if not isinstance(self.history, list):
            raise TypeError(
                f"Run: history must be a list of epoch records, got {type(self.history).__name__}"
            )
        xi = self.model.memories
        for name, shape in (("velocity", tuple(xi.shape)), ("velocity_log_scale", (xi.shape[0],))):
            t = getattr(self, name)
            if t is None:
                continue
            require_tensor(t, name, "Run")
            if tuple(t.shape) != shape:
                raise ValueError(f"Run: {name} must have shape {shape} (the memories'), got {tuple(t.shape)}")
            found = (
                where_not_finite(t, allow_neg_inf=name == "velocity_log_scale")
                if value_checks_enabled()
                else None
            )
            if found is not None:  # -inf is a log scale of zero (a memory that never moved)
                raise ValueError(f"Run: {name} holds NaN or Inf ({found}); every value must be finite")

    @property
    def test_error(self) -> float | None:
        return self.history[-1]["test_error"] if self.history else None


def arithmetic(model: DAMClassifier) -> dict[str, object]:
    """What this process computes the model's training with: its kernels, threads, device, the CPU's vector
    instructions (which compiled kernels and the matrix products use) and the torch version."""
    return {
        "kernels": model.kernels.kind,
        "threads": torch.get_num_threads(),
        "device": model.memories.device.type,
        "cpu": torch.backends.cpu.get_cpu_capability(),
        "torch": torch.__version__,
    }


def save_checkpoint(folder: str | os.PathLike, run: Run) -> Path:
    """Write ``folder/checkpoint.safetensors`` atomically (tensors + JSON metadata); never non-finite weights."""
    path = Path(folder) / CHECKPOINT
    tensors = {"memories": run.model.memories.detach().contiguous().cpu()}
    if run.velocity is not None:
        tensors["velocity"] = run.velocity.contiguous().cpu()
        tensors["velocity_log_scale"] = run.velocity_log_scale.contiguous().cpu()
    for name in ("memories", "velocity"):
        if name in tensors and not bool(torch.isfinite(tensors[name]).all()):
            raise ValueError(
                f"save_checkpoint: the run's {name} hold non-finite values; {path} is left as it was"
            )
    if run.generator_state is not None:
        tensors["generator"] = run.generator_state.cpu()
    metadata = {
        "format": FORMAT,
        "config": to_json(run.config.to_dict(), indent=None),
        "epoch": str(run.epoch),
        "temperature": repr(run.model.temperature),
        "history": to_json({"history": run.history}, indent=None),
        "arithmetic": to_json(run.arithmetic or arithmetic(run.model), indent=None),
        "provenance": to_json(provenance(), indent=None),
    }
    with atomic_path(path) as tmp:
        save_file(tensors, tmp, metadata=metadata)
    return path


def check_device(device: object, who: str) -> torch.device | None:
    """``device`` (``None``, a ``torch.device`` or its name) as a ``torch.device`` with values: an error naming it
    for a name torch does not know and for the meta device (a run computes values)."""
    if device is None:
        return None
    if not isinstance(device, str | torch.device):
        raise TypeError(
            f"{who}: device must be a torch.device, a name such as 'cpu', or None, got {device!r}"
        )
    try:
        parsed = torch.device(device)
    except RuntimeError as err:
        raise ValueError(f"{who}: device {device!r} is not a device torch knows ({err})") from None
    if parsed.type == "meta":
        raise ValueError(
            f"{who}: device is the meta device (shapes without values); training computes values"
        )
    return parsed


def check_folder_path(folder: object, name: str, who: str) -> Path:
    """``folder`` (a ``str`` or ``os.PathLike``, not empty: ``''`` would mean the working directory) as a Path."""
    if not isinstance(folder, str | os.PathLike):
        raise TypeError(
            f"{who}: {name} must be a folder path (str or os.PathLike), got {type(folder).__name__}"
        )
    if not os.fspath(folder):
        raise ValueError(f"{who}: {name} is the empty path; name a folder")
    return Path(folder)


def load_run(
    folder: str | os.PathLike, device: torch.device | str | None = None, compile: bool = False
) -> Run:
    """The run saved in ``folder`` (its last checkpoint); a clear error when it is missing or corrupt, or when the
    folder's ``config.json`` was edited (:func:`check_record`)."""
    path = check_folder_path(folder, "folder", "load_run") / CHECKPOINT
    device = check_device(device, "load_run")
    if not isinstance(compile, bool):
        raise TypeError(f"load_run: compile must be True or False, got {compile!r}")
    if not path.is_file():
        raise FileNotFoundError(
            f"{folder}: no classifier checkpoint ({CHECKPOINT}); train one with --out {folder}"
        )
    tensors, metadata = read_checkpoint(path)
    if metadata.get("format") != FORMAT or "memories" not in tensors:
        raise ValueError(
            f"{path}: not a classifier checkpoint (format {metadata.get('format')!r}, expected {FORMAT})"
        )
    config = TrainConfig.from_dict(json.loads(metadata["config"]))
    check_record(folder, config)
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
    history = json.loads(metadata["history"])
    return Run(
        model,
        config,
        int(metadata["epoch"]),
        history["history"] if isinstance(history, dict) else history,  # format 1 before the wrapper
        tensors.get("velocity"),
        tensors.get("velocity_log_scale"),
        tensors.get("generator"),
        json.loads(metadata["arithmetic"]) if "arithmetic" in metadata else None,
    )


def check_record(folder: str | os.PathLike, config: TrainConfig, against: str = "checkpoint") -> None:
    """Refuse a ``config.json`` in ``folder`` that differs from ``config`` (the ``against``'s settings) in any
    setting but ``epochs`` (which a resumed run may raise before its next checkpoint); a missing one is fine."""
    path = Path(folder) / CONFIG
    if not path.is_file():
        return
    try:
        recorded = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(
            f"{path}: not readable JSON ({err}); restore it from the checkpoint's settings"
        ) from err
    if not isinstance(recorded, dict):
        raise ValueError(f"{path}: expected a JSON object of settings, got {type(recorded).__name__}")
    recorded = {k: v for k, v in recorded.items() if k not in RECORD_KEYS}
    a = config.to_dict()
    diff = [
        f"{k}: config.json {recorded.get(k, '(missing)')!r}, {against} {a.get(k, '(missing)')!r}"
        for k in sorted(set(a) | set(recorded))
        if k not in TrainConfig.RESUMABLE and (k not in a or k not in recorded or a[k] != recorded[k])
    ]
    if diff:
        raise ValueError(
            f"{path} differs from the run's {against} ({'; '.join(diff)}). config.json records the settings the "
            "run was trained with; it is not read as settings. Restore it, or train a new run in another folder"
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
