"""A HAM classification recipe: every setting of a run, read from a JSON or TOML file (docs/ham.md, "Recipes").

A recipe names the architecture (``"dense"``: a clamped image layer, a hidden ReLU layer and a softmax label
layer; ``"conv"``: a clamped image, a convolution to a ReLU feature layer, average pooling to a ReLU layer, an
optional dense hidden ReLU layer, and the labels), the data, the optimiser, how the network relaxes (integrator,
step, tolerance) and how the loss's gradient passes through the relaxation (``gradient="implicit"`` or
``"unrolled"``: docs/dynamics.md, "Training through the dynamics").
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import tomllib

from assocmem.checks import known_settings
from assocmem.ham.task_config import SCHEDULES, TASK_CONFIGS, PatchesConfig, ReconstructConfig

TASKS = ("classify", *TASK_CONFIGS)

ARCHITECTURES = ("dense", "conv")
DATASETS = ("mnist", "fashion-mnist")
GRADIENTS = ("implicit", "unrolled")
HIDDEN_ACTIVATIONS = ("relu", "tanh", "sigmoid")
METHODS = ("exp_euler", "euler", "rk4", "dopri5", "stiff")


@dataclass
class HamConfig:
    """The settings of a HAM classification run (every field has a default; a recipe file overrides some)."""

    architecture: str = "dense"
    dataset: str = "mnist"
    hidden: int = (
        1000  #: dense hidden ReLU units (0: none; for "conv" the pooled layer then feeds the labels)
    )
    #: "conv": the dense hidden layer's neurons; "tanh" and "sigmoid" are bounded, so their synapse needs no bound
    hidden_activation: str = "relu"
    channels: int = 16  #: "conv": feature maps of the convolution
    kernel: int = 5  #: "conv": kernel size (padding kernel // 2: the feature maps are 28 / stride on a side)
    stride: int = 1  #: "conv": stride of the convolution
    pool: int = 2  #: "conv": average-pooling window (and stride)
    label_beta: float = 1.0  #: inverse temperature of the softmax label layer
    epochs: int = 5
    batch_size: int = 128
    lr: float = 1e-3  #: Adam's learning rate
    #: "constant", or "cosine": lr * (1 + cos(pi * minibatches done / all minibatches of the run's epochs)) / 2, so
    #: the weights an epoch's evaluation sees come from ever smaller steps (docs/ham.md, "The epoch-2 drop")
    lr_schedule: str = "constant"
    seed: int = 0
    train_size: int | None = None  #: use only the first N training images (None: all)
    test_size: int | None = None  #: evaluate on the first N test images (None: all)
    gradient: str = "implicit"
    method: str = "exp_euler"
    dt: float = 0.5
    tol: float = 1e-3  #: a sample has settled when max |dx/dt| <= tol (training and evaluation)
    t_max: float = 200.0
    adjoint_tol: float = (
        1e-4  #: gradient="implicit": relative residual of the adjoint solve (float32 stalls near 1e-5)
    )
    coupling_bound: float = (
        0.9  #: "conv" with hidden > 0: the coupling norm kept among the free linear layers (> 1/pool, < 1)
    )
    dtype: str = "float32"

    #: settings a resumed run may change (raising t_max lets a run whose relaxations slowed past it go on; the
    #: result is then a continuation, bit-identical only to runs with the same t_max throughout)
    RESUMABLE = frozenset({"epochs", "test_size", "t_max"})

    def __post_init__(self) -> None:
        def choice(name: str, options: tuple[str, ...]) -> None:
            if getattr(self, name) not in options:
                raise ValueError(
                    f"HamConfig: {name} must be one of {', '.join(map(repr, options))}, got {getattr(self, name)!r}"
                )

        def count(name: str, zero: bool = False, none: bool = False) -> None:
            v = getattr(self, name)
            if none and v is None:
                return
            if isinstance(v, bool) or not isinstance(v, int) or v < (0 if zero else 1):
                raise ValueError(
                    f"HamConfig: {name} must be a {'non-negative' if zero else 'positive'} int"
                    f"{' or null' if none else ''}, got {v!r}"
                )

        def positive(name: str, below: float | None = None) -> None:
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v < (below or float("inf")):
                span = f"in (0, {below:g})" if below else "a positive finite number"
                raise ValueError(f"HamConfig: {name} must be {span}, got {v!r}")
            setattr(self, name, float(v))

        choice("architecture", ARCHITECTURES)
        choice("dataset", DATASETS)
        choice("gradient", GRADIENTS)
        choice("hidden_activation", HIDDEN_ACTIVATIONS)
        choice("method", METHODS)
        choice("lr_schedule", SCHEDULES)
        choice("dtype", ("float32", "float64"))
        for name in ("channels", "kernel", "stride", "pool", "epochs", "batch_size"):
            count(name)
        count("hidden", zero=True)
        count("seed", zero=True)
        count("train_size", none=True)
        count("test_size", none=True)
        for name in ("label_beta", "lr", "dt", "tol", "t_max"):
            positive(name)
        positive("coupling_bound", below=1.0)
        positive("adjoint_tol", below=1.0)
        if self.architecture == "dense" and self.hidden == 0:
            raise ValueError(
                "HamConfig: a dense HAM needs hidden >= 1 units between the image and the labels"
            )
        relu_hidden = self.hidden and self.hidden_activation == "relu"
        if self.architecture == "conv" and relu_hidden and self.coupling_bound <= 1.0 / self.pool:
            raise ValueError(
                f"HamConfig: coupling_bound={self.coupling_bound:g} must exceed the pooling's own coupling 1/pool = "
                f"{1.0 / self.pool:g} (the dense hidden synapse gets sqrt(coupling_bound^2 - 1/pool^2))"
            )
        if self.architecture == "conv" and (28 % self.stride or (28 // self.stride) % self.pool):
            raise ValueError(
                f"HamConfig: stride={self.stride} and pool={self.pool} must tile the 28-pixel image (28 / stride "
                "a whole number that pool divides)"
            )

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict, source: str = "config") -> HamConfig:
        known_settings(cls, values, source)
        return cls(**values)


def recipe_from_dict(values: dict, source: str = "config") -> HamConfig | ReconstructConfig | PatchesConfig:
    """The recipe of the task ``values["task"]`` names (``"classify"`` when absent: :class:`HamConfig`)."""
    if not isinstance(values, dict):
        return HamConfig.from_dict(values, source)  # refused there: a recipe is a table
    task = values.get("task", "classify")
    if task not in TASKS:
        raise ValueError(f"{source}: task must be one of {', '.join(map(repr, TASKS))}, got {task!r}")
    if task == "classify":
        return HamConfig.from_dict({k: v for k, v in values.items() if k != "task"}, source)
    return TASK_CONFIGS[task].from_dict(values, source)


def load_recipe(path: str | os.PathLike) -> HamConfig | ReconstructConfig | PatchesConfig:
    """The recipe in a ``.json`` or ``.toml`` file (its ``task`` says which kind; none: classification, a
    :class:`HamConfig`); a clear error for anything else."""
    if not isinstance(path, (str, os.PathLike)) or not str(path):
        raise TypeError(f"load_recipe: path must be a non-empty file path (str or os.PathLike), got {path!r}")
    path = Path(path)
    if path.suffix not in (".json", ".toml"):
        raise ValueError(f"recipe {path}: expected a .json or .toml file")
    if not path.is_file():
        raise FileNotFoundError(f"recipe {path}: no such file")
    text = path.read_text(encoding="utf-8")
    try:
        values = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as err:
        raise ValueError(f"recipe {path}: not valid {path.suffix[1:].upper()} ({err})") from None
    return recipe_from_dict(values, f"recipe {path}")
