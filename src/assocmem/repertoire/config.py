"""A repertoire-classification recipe: the model and its training, read from a JSON file (docs/repertoire.md).

One dataclass holds every setting of a run: the sequence embedding (a 1-D convolution over one-hot amino acids and
three position features, :mod:`.embedding`), the pooling of the bag (``"attention"``: Hopfield pooling with learned
queries, :mod:`.pooling`; ``"mean"`` and ``"max"``: the baselines), the output network and the optimiser. Every
field has a default; a recipe file overrides some; a bad value is refused at construction with the field's name.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from assocmem.checks import known_settings

POOLINGS = ("attention", "mean", "max")
SEPARATIONS = ("softmax", "sparsemax", "entmax15")
ACTIVATIONS = ("selu", "relu")
EMBEDDINGS = ("conv", "gapped")
DTYPES = ("float32", "float64")


@dataclass
class RepertoireConfig:
    """The settings of a repertoire classifier and its training run."""

    pooling: str = "attention"
    #: "conv": the 1-D convolution; "gapped": summed learned vectors of the gapped k-mers (:mod:`.gapped`)
    embedding: str = "conv"
    dim: int = 32  #: d, the width of a sequence embedding (convolution kernels)
    kernel: int = 5  #: "conv": the convolution's width in amino acids
    span: int = 5  #: "gapped": positions a gapped k-mer covers at most, gaps included
    letters: int = 3  #: "gapped": letters of a gapped k-mer, 2 to this many
    activation: str = "selu"
    heads: int = 4  #: "attention": learned queries, each giving one pooled vector ("mean", "max": unused)
    beta: float | None = None  #: "attention": inverse temperature (None: 1/sqrt(dim))
    #: "attention": softmax, or the sparse "sparsemax" / "entmax15" (reference §7)
    separation: str = "softmax"
    abundance: bool = False  #: weight each sequence by its count (attention: log count added to the scores)
    hidden: int = 32  #: units of the output network's hidden layer (0: a linear output)
    chunk: int = 4096  #: sequences embedded (and pooled) per chunk: the bound on memory beyond the embeddings
    lr: float = 3e-3  #: Adam's learning rate
    weight_decay: float = 0.0
    epochs: int = 20
    bags_per_step: int = 4  #: bags whose losses are averaged into one Adam step
    balanced: bool = False  #: every step holds as many positive as negative bags (while both last)
    subsample: int | None = (
        None  #: during training, a random subset of this many sequences per bag (None: all)
    )
    patience: int | None = None  #: stop after this many epochs without a better validation AUC (None: never)
    seed: int = 0
    dtype: str = "float32"

    #: settings a resumed run may change
    RESUMABLE = frozenset({"epochs", "patience"})

    def __post_init__(self) -> None:
        who = "RepertoireConfig"

        def choice(name: str, options: tuple[str, ...]) -> None:
            if getattr(self, name) not in options:
                raise ValueError(
                    f"{who}: {name} must be one of {', '.join(map(repr, options))}, got {getattr(self, name)!r}"
                )

        def count(name: str, least: int = 1, none: bool = False) -> None:
            v = getattr(self, name)
            if none and v is None:
                return
            if isinstance(v, bool) or not isinstance(v, int) or v < least:
                kind = "positive" if least == 1 else f">= {least}"
                raise ValueError(f"{who}: {name} must be a {kind} int{' or null' if none else ''}, got {v!r}")

        def number(name: str, zero: bool = False, none: bool = False) -> None:
            v = getattr(self, name)
            if none and v is None:
                return
            ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
            if not ok or v < 0 or (v == 0 and not zero):
                kind = "non-negative" if zero else "positive"
                raise ValueError(
                    f"{who}: {name} must be a {kind} finite number{' or null' if none else ''}, got {v!r}"
                )
            if v is not None:
                setattr(self, name, float(v))

        choice("pooling", POOLINGS)
        choice("embedding", EMBEDDINGS)
        choice("separation", SEPARATIONS)
        choice("activation", ACTIVATIONS)
        choice("dtype", DTYPES)
        for name in ("dim", "kernel", "heads", "chunk", "epochs", "bags_per_step"):
            count(name)
        count("hidden", least=0)
        count("span", least=2)
        count("letters", least=2)
        if self.letters > min(self.span, 4):
            raise ValueError(
                f"{who}: letters must be at most span and at most 4 (20**4 features a pattern), got letters "
                f"{self.letters}, span {self.span}"
            )
        count("seed", least=0)
        count("subsample", none=True)
        count("patience", none=True)
        number("beta", none=True)
        number("lr")
        number("weight_decay", zero=True)
        for name in ("abundance", "balanced"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{who}: {name} must be true or false, got {getattr(self, name)!r}")
        if self.separation != "softmax" and (self.pooling != "attention" or self.abundance):
            raise ValueError(
                f"{who}: separation {self.separation!r} is a setting of the attention pooling without abundance "
                f"(a log count is 'repeated copies' only under the softmax), got pooling {self.pooling!r}, "
                f"abundance {self.abundance}"
            )
        if self.balanced and self.bags_per_step % 2:
            raise ValueError(
                f"{who}: balanced steps need an even bags_per_step (as many positive as negative bags), "
                f"got {self.bags_per_step}"
            )

    @property
    def inverse_temperature(self) -> float:
        """beta, or its default 1/sqrt(dim)."""
        return self.beta if self.beta is not None else 1.0 / math.sqrt(self.dim)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: object, source: str = "recipe") -> RepertoireConfig:
        """A configuration from a mapping of settings; unknown names are refused, naming ``source``."""
        known_settings(cls, values, source)
        try:
            return cls(**values)
        except ValueError as err:
            raise ValueError(f"{source}: {err}") from None

    @classmethod
    def load(cls, path: str | os.PathLike) -> RepertoireConfig:
        """A recipe file (JSON)."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"recipe {path} does not exist (a JSON file of settings)")
        try:
            values = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ValueError(f"recipe {path} is not valid JSON: {err}") from None
        return cls.from_dict(values, str(path))
