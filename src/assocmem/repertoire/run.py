"""A repertoire training run on disk: checkpoints, exact resuming, model selection, metrics.json (docs/repertoire.md).

A run folder holds ``config.json`` (the recipe, :class:`~assocmem.repertoire.config.RepertoireConfig`, and the
provenance), ``checkpoint.safetensors`` (the weights, the weights of the best epoch so far, Adam's moments and the
random generator's state as tensors; the recipe, the epoch, the history and the best epoch as metadata: one file,
written atomically after every epoch) and ``metrics.json`` (per epoch the training loss, the validation and test
AUC and the throughput; the selected epoch; provenance). The selected model is the epoch with the highest
validation AUC (the first of equals); with ``patience`` training stops after that many epochs without a better one.
Resuming restores everything, so a run killed at any moment (``kill -9`` included) and resumed redoes at most the
epoch it was in and ends with the same weights, bit for bit, as one never interrupted (same machine and threads).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import save_file

from assocmem.files import atomic_path, read_checkpoint, write_json
from assocmem.provenance import provenance
from assocmem.repertoire.bag import Repertoire
from assocmem.repertoire.config import RepertoireConfig
from assocmem.repertoire.metrics import roc_auc
from assocmem.repertoire.model import RepertoireClassifier
from assocmem.repertoire.training import StepCallback, scores, train_epoch

CHECKPOINT = "checkpoint.safetensors"
CONFIG = "config.json"
METRICS = "metrics.json"
FORMAT = "assocmem.repertoire-run/1"
PARTS = ("train", "validation", "test")


@dataclass
class RepertoireRun:
    """A model, its optimiser, its generator and where training stands; ``best`` the selected weights."""

    model: RepertoireClassifier
    optimizer: torch.optim.Optimizer
    config: RepertoireConfig
    generator: torch.Generator
    epoch: int = 0
    history: list[dict] = field(default_factory=list)
    best: dict[str, torch.Tensor] | None = None
    best_epoch: int | None = None

    def selected(self) -> RepertoireClassifier:
        """A copy of the model with the selected (best validation AUC) weights, or the last ones before any epoch."""
        model = RepertoireClassifier(self.config)
        model.load_state_dict(self.best if self.best is not None else self.model.state_dict())
        return model.eval()


def new_run(config: RepertoireConfig) -> RepertoireRun:
    """A fresh run: the weights drawn from a generator seeded with ``config.seed``, which then draws the orders."""
    generator = torch.Generator().manual_seed(config.seed)
    model = RepertoireClassifier(config, generator)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    return RepertoireRun(model, optimizer, config, generator)


def save_checkpoint(folder: str | os.PathLike, run: RepertoireRun) -> Path:
    """Write ``folder/checkpoint.safetensors`` atomically."""
    path = Path(folder) / CHECKPOINT
    tensors = {f"model.{k}": v.detach().contiguous().cpu() for k, v in run.model.state_dict().items()}
    if run.best is not None:
        tensors |= {f"best.{k}": v.contiguous().cpu() for k, v in run.best.items()}
    state = run.optimizer.state_dict()
    for i, s in state["state"].items():
        tensors |= {f"adam.{i}.{k}": torch.as_tensor(v).contiguous().cpu() for k, v in s.items()}
    tensors["generator"] = run.generator.get_state()
    metadata = {
        "format": FORMAT,
        "config": json.dumps(run.config.to_dict()),
        "epoch": str(run.epoch),
        "best_epoch": json.dumps(run.best_epoch),
        "history": json.dumps(run.history),
        "param_groups": json.dumps(state["param_groups"]),
    }
    with atomic_path(path) as tmp:
        save_file(tensors, tmp, metadata=metadata)
    return path


def load_run(folder: str | os.PathLike) -> RepertoireRun:
    """The run saved in ``folder`` (its checkpoint)."""
    path = Path(folder) / CHECKPOINT
    if not path.is_file():
        raise FileNotFoundError(
            f"{folder}: no repertoire checkpoint ({CHECKPOINT}); train one with --out {folder}"
        )
    tensors, metadata = read_checkpoint(path)
    if metadata.get("format") != FORMAT:
        raise ValueError(
            f"{path}: not a repertoire checkpoint (format {metadata.get('format')!r}, expected {FORMAT})"
        )
    run = new_run(RepertoireConfig.from_dict(json.loads(metadata["config"]), str(path)))
    run.model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    best = {k[5:]: v for k, v in tensors.items() if k.startswith("best.")}
    run.best = best or None
    adam: dict[int, dict] = {}
    for k, v in tensors.items():
        if k.startswith("adam."):
            _, i, key = k.split(".", 2)
            adam.setdefault(int(i), {})[key] = v
    run.optimizer.load_state_dict({"state": adam, "param_groups": json.loads(metadata["param_groups"])})
    run.generator.set_state(tensors["generator"])
    run.epoch = int(metadata["epoch"])
    run.best_epoch = json.loads(metadata["best_epoch"])
    run.history = json.loads(metadata["history"])
    return run


def check_folder(folder: Path, resume: bool) -> str | None:
    """What in ``folder`` shows a run was started there, checked against ``resume``."""
    found = next((name for name in (CHECKPOINT, CONFIG) if (folder / name).is_file()), None)
    if found and not resume:
        raise ValueError(
            f"{folder} already holds a repertoire run ({found}); pass --resume to continue it or choose another folder"
        )
    if resume and not found:
        raise ValueError(
            f"{folder} holds no repertoire run to resume (no {CHECKPOINT}); leave out --resume to start one"
        )
    return found


def check_compatible(saved: RepertoireConfig, wanted: RepertoireConfig, folder: Path) -> None:
    """Refuse to resume with other settings than the checkpoint's (only ``RESUMABLE`` ones may change)."""
    a, b = saved.to_dict(), wanted.to_dict()
    diff = [f"{k}: checkpoint {a[k]!r}, now {b[k]!r}" for k in a if k not in saved.RESUMABLE and a[k] != b[k]]
    if diff:
        raise ValueError(
            f"{folder} holds a run with other settings ({'; '.join(diff)}); resume with the same recipe"
        )


def metrics(run: RepertoireRun, data: dict | None = None) -> dict:
    """metrics.json: the selected epoch's validation and test AUC, per epoch, the recipe, the data, provenance."""
    chosen = next((r for r in run.history if r["epoch"] == run.best_epoch), None)
    return {
        "test_auc": chosen["test_auc"] if chosen else None,
        "validation_auc": chosen["validation_auc"] if chosen else None,
        "selected_epoch": run.best_epoch,
        "epochs_done": run.epoch,
        "done": run.epoch >= run.config.epochs or stopped(run),
        "per_epoch": run.history,
        "config": run.config.to_dict(),
        **({"data": data} if data is not None else {}),
        "provenance": provenance(),
    }


def stopped(run: RepertoireRun) -> bool:
    """Whether early stopping has ended the run (``patience`` epochs without a better validation AUC)."""
    p = run.config.patience
    return p is not None and run.best_epoch is not None and run.epoch - run.best_epoch >= p


def load_split(folder: str | os.PathLike, seed: int) -> tuple[dict[str, list[Repertoire]], dict]:
    """The bags of a data set folder split into training, validation and test (stratified, from ``seed``), and a
    record of the data and split for metrics.json."""
    from assocmem.repertoire.dataset import RepertoireDataset

    dataset = RepertoireDataset.open(folder)
    split = dataset.split(seed=seed)
    bags = {part: [dataset[i] for i in split[part]] for part in PARTS}
    record = {
        "folder": str(folder),
        "seed": seed,
        **{part: [dataset.names[i] for i in split[part]] for part in PARTS},
    }
    return bags, record


def auc(values: torch.Tensor, bags: Sequence[Repertoire]) -> float | None:
    """The ROC AUC of ``values`` for the bags' labels (None when a set has a single class or no bag)."""
    labels = torch.tensor([b.label for b in bags], dtype=torch.int64)
    if len(bags) == 0 or labels.min() == labels.max():
        return None
    return roc_auc(values, labels)


def train(
    config: RepertoireConfig,
    bags: dict[str, Sequence[Repertoire]],
    out: str | os.PathLike | None = None,
    *,
    resume: bool = False,
    data: dict | None = None,
    on_step: StepCallback | None = None,
    on_epoch: Callable[[dict], None] | None = None,
) -> RepertoireRun:
    """Train to ``config.epochs`` epochs (or early stopping) on ``bags["train"]``, selecting on
    ``bags["validation"]`` and reporting ``bags["test"]`` every epoch; with ``out`` a run folder (module doc).
    ``data`` (the data set's folder, split) goes into metrics.json as it is."""
    if not isinstance(config, RepertoireConfig):
        raise TypeError(f"train: config must be a RepertoireConfig, got {type(config).__name__}")
    if not isinstance(bags, dict) or set(bags) != set(PARTS):
        raise ValueError(
            f"train: bags must be a dict with the keys {PARTS}, got "
            f"{sorted(bags) if isinstance(bags, dict) else type(bags).__name__}"
        )
    for part in PARTS:
        if any(not isinstance(b, Repertoire) or b.label is None for b in bags[part]):
            raise ValueError(f"train: bags[{part!r}] must hold labelled Repertoire bags")
    if not bags["train"]:
        raise ValueError("train: bags['train'] is empty")
    folder = Path(out) if out is not None else None
    found = check_folder(folder, resume) if folder is not None else None
    if found == CHECKPOINT:
        run = load_run(folder)
        check_compatible(run.config, config, folder)
        run.config = config
    else:
        run = new_run(config)
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        write_json(folder / CONFIG, {**config.to_dict(), "provenance": provenance()})
    while run.epoch < config.epochs and not stopped(run):
        record = {
            "epoch": run.epoch + 1,
            **train_epoch(run.model, run.optimizer, bags["train"], config, run.generator, on_step),
        }
        for part in ("validation", "test"):
            record[f"{part}_auc"] = auc(scores(run.model, bags[part]), bags[part])
        run.epoch += 1
        best = next((r["validation_auc"] for r in run.history if r["epoch"] == run.best_epoch), None)
        v = record["validation_auc"]
        if run.best_epoch is None or (v is not None and (best is None or v > best)):
            run.best_epoch = run.epoch
            run.best = {k: t.detach().clone() for k, t in run.model.state_dict().items()}
        run.history.append(record)
        if folder is not None:
            save_checkpoint(folder, run)
            write_json(folder / METRICS, metrics(run, data))
        if on_epoch is not None:
            on_epoch(record)
    if folder is not None:
        write_json(folder / METRICS, metrics(run, data))
    return run
