"""The recipes of the HAM tasks beside classification: reconstruction and masked-patch completion (docs/ham.md).

A recipe file names its task (``"task": "reconstruct"`` or ``"patches"``; a file without ``task`` is a
classification recipe, :class:`~assocmem.ham.config.HamConfig`). Every field has a default; unknown or bad
values are refused with the field named, as for the classifier's recipes.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from assocmem.checks import known_settings

DATASETS = ("mnist", "fashion-mnist")
INITIALISATIONS = ("shifted", "zero_mean")
SCHEDULES = ("constant", "cosine")


def _check(
    config: object, counts: tuple[str, ...], positives: tuple[str, ...], optional: tuple[str, ...]
) -> None:
    """Refuse a bad field of ``config`` with its name: ``counts`` positive ints, ``positives`` positive finite
    numbers (stored as float), ``optional`` positive ints or None; ``dataset`` and ``dtype`` from their lists."""
    name = type(config).__name__
    for field in counts + optional:
        v = getattr(config, field)
        if field in optional and v is None:
            continue
        zero = field in ("seed", "fixed_point_size")
        if isinstance(v, bool) or not isinstance(v, int) or v < (0 if zero else 1):
            least = "non-negative" if zero else "positive"
            raise ValueError(
                f"{name}: {field} must be a {least} int{' or null' * (field in optional)}, got {v!r}"
            )
    for field in positives:
        v = getattr(config, field)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not (0 < v < math.inf):
            raise ValueError(f"{name}: {field} must be a positive finite number, got {v!r}")
        setattr(config, field, float(v))
    for field, options in (
        ("dataset", DATASETS),
        ("dtype", ("float32", "float64")),
        ("lr_schedule", SCHEDULES),
    ):
        if getattr(config, field) not in options:
            raise ValueError(
                f"{name}: {field} must be one of {', '.join(map(repr, options))}, got {getattr(config, field)!r}"
            )


class _Recipe:
    """``to_dict`` / ``from_dict`` shared by the task recipes (``task`` is part of the dictionary)."""

    task: str
    RESUMABLE: frozenset[str]

    def to_dict(self) -> dict:
        return {"task": self.task, **asdict(self)}  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls, values: dict, source: str = "config"):
        known_settings(cls, values, source, also=("task",))
        values = {k: v for k, v in values.items() if k != "task"}
        return cls(**values)


@dataclass
class ReconstructConfig(_Recipe):
    """MNIST reconstruction (hamux's recipe): ``pixels`` spherical image neurons, ``memories`` unit-norm
    log-sum-exp memories at ``beta``; trained to denoise ``clean + noise N(0, 1)`` in ``steps`` descent steps of
    size ``alpha`` (docs/ham.md, "Reconstruction")."""

    task = "reconstruct"
    dataset: str = "mnist"
    memories: int = 900
    beta: float = 10.0
    noise: float = 0.3
    steps: int = 1  #: descent steps in the training loss (hamux: 1)
    alpha: float = 1.0  #: their size (hamux: 1)
    init: str = (
        "shifted"  #: raw memories ``0.02 N(0, 1) + 0.2`` ("shifted", hamux's) or ``+ 0`` ("zero_mean")
    )
    epochs: int = 10
    batch_size: int = 100
    lr: float = 0.04
    lr_schedule: str = "constant"  #: or "cosine": lr * (1 + cos(pi * minibatches done / all minibatches)) / 2
    seed: int = 0
    train_size: int | None = None
    test_size: int | None = None
    fixed_point_size: int = (
        1000  #: test images also relaxed to a fixed point (noisy, and with the lower half masked)
    )
    tol: float = 1e-4  #: a relaxation has settled when max |dx/dt| <= tol
    t_max: float = 1000.0
    rtol: float = 1e-5  #: dopri5's relative error control (atol = rtol / 10)
    dtype: str = "float32"

    RESUMABLE = frozenset({"epochs", "test_size", "fixed_point_size", "t_max"})

    def __post_init__(self) -> None:
        _check(
            self,
            ("memories", "steps", "epochs", "batch_size", "seed", "fixed_point_size"),
            ("beta", "noise", "alpha", "lr", "tol", "t_max", "rtol"),
            ("train_size", "test_size"),
        )
        if self.init not in INITIALISATIONS:
            raise ValueError(
                f"ReconstructConfig: init must be one of {', '.join(map(repr, INITIALISATIONS))}, got {self.init!r}"
            )


@dataclass
class PatchesConfig(_Recipe):
    """Masked-patch completion with an Energy-Transformer block: ``patch`` x ``patch`` patches encoded to tokens
    of ``dim`` units, ``heads`` attention heads of ``key_dim``, ``memories`` ReLU-squared memories, ``steps`` Euler
    steps of ``dt``; ``masked`` patches per image hidden (docs/ham.md, "Masked patches")."""

    task = "patches"
    dataset: str = "fashion-mnist"
    patch: int = 7
    dim: int = 32
    heads: int = 2
    key_dim: int = 16
    memories: int = 128
    steps: int = 12
    dt: float = 0.1
    masked: int = 4
    epochs: int = 3
    batch_size: int = 128
    lr: float = 0.01
    lr_schedule: str = "constant"  #: or "cosine": lr * (1 + cos(pi * minibatches done / all minibatches)) / 2
    seed: int = 0
    train_size: int | None = None
    test_size: int | None = None
    fixed_point_size: int = 1000  #: test images also relaxed to the block's fixed point
    tol: float = 1e-3
    t_max: float = 500.0
    dtype: str = "float32"

    RESUMABLE = frozenset({"epochs", "test_size", "fixed_point_size", "t_max"})

    def __post_init__(self) -> None:
        counts = ("patch", "dim", "heads", "key_dim", "memories", "steps", "masked", "epochs", "batch_size")
        _check(
            self,
            (*counts, "seed", "fixed_point_size"),
            ("dt", "lr", "tol", "t_max"),
            ("train_size", "test_size"),
        )
        if 28 % self.patch:
            raise ValueError(f"PatchesConfig: patch={self.patch} must divide the 28-pixel image")
        tokens = (28 // self.patch) ** 2
        if not self.masked < tokens:
            raise ValueError(
                f"PatchesConfig: masked must be below the {tokens} patches of an image, got {self.masked}"
            )


#: the recipe class of each task other than "classify"
TASK_CONFIGS = {"reconstruct": ReconstructConfig, "patches": PatchesConfig}
