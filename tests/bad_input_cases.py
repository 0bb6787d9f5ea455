"""The vocabulary of tests/test_bad_input.py: the kinds of bad input, a bad call, a documented result, and the
small tensors the rows are made of."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from assocmem.classifier import DAMClassifier
from assocmem.models import model_b
from assocmem.nn import Hopfield, HopfieldDecoderLayer, HopfieldEncoderLayer

KINDS = ("nan", "inf", "last_dim", "rank", "empty", "dtype", "meta", "option")
NAN, INF = float("nan"), float("inf")


@dataclass(frozen=True)
class Bad:
    """A call with one bad argument: it raises TypeError or ValueError whose message matches ``names``."""

    call: Callable[[], object]
    names: str


@dataclass(frozen=True)
class Result:
    """A documented answer to an unusual input (docs/bad-input.md says which); ``check`` holds on it."""

    call: Callable[[], object]
    check: Callable[[object], bool]
    doc: str


# ----------------------------------------------------------------------------------------------------------- data
def spins(k: int, n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.where(torch.rand(k, n, generator=g) < 0.5, -1.0, 1.0)


def poke(t: torch.Tensor, value: float, index: int = 0) -> torch.Tensor:
    """``t`` with one entry set to ``value``."""
    t = t.clone()
    t.view(-1)[index] = value
    return t


def meta(t: torch.Tensor) -> torch.Tensor:
    return torch.empty(t.shape, dtype=t.dtype, device="meta")


M, Q = torch.randn(12, 4), torch.randn(3, 4)  # a memory and queries for the retrieval engine
X = torch.randn(2, 5, 8)  # a batch of sequences for the layers
R4, Y4 = torch.randn(2, 1, 3, 4), torch.randn(2, 1, 6, 4)  # hopfield_update's (B, H, L, d) and (B, H, S, d)
XI = spins(6, 10)
IMAGES = torch.rand(3, 784) * 2 - 1


def is_empty_of(shape: tuple[int, ...]) -> Callable[[object], bool]:
    return lambda out: isinstance(out, torch.Tensor) and tuple(out.shape) == shape


def finite(out: object) -> bool:
    return bool(torch.isfinite(out).all())


def nan_out(out: object) -> bool:
    return bool(torch.isnan(out).any())


def net():
    return model_b(M, 2.0)


def state(v: torch.Tensor, h: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    return {"v": v, "h": torch.zeros(v.shape[0], 12, dtype=v.dtype) if h is None else h}


def layer(**kw):
    return Hopfield(8, **kw)


def encoder():
    return HopfieldEncoderLayer(Hopfield(8), dim_feedforward=16)


def decoder():
    return HopfieldDecoderLayer(Hopfield(8), Hopfield(8), dim_feedforward=16)


def classifier():
    return DAMClassifier(20, generator=torch.Generator().manual_seed(0))


# ------------------------------------------------------------------------------------------------ the table


NO_VALUES = "takes no tensor: options only"


def output_of(out: object) -> torch.Tensor:
    """The tensor a layer's call answers with (its ``output`` for a result)."""
    return out.output if hasattr(out, "output") else out
