"""The read-out nonlinearities of the key-value memory, each the activation of a hidden-layer Lagrangian.

Reading the memory is ``h = f(K x~)``, ``y~ = V h`` (Tyulmankov et al. 2021, section 2.1; docs/reference.md §10).
The function ``f`` that turns the key matches into the hidden units' activity is the activation of a Lagrangian
``L_h`` of the hidden layer, ``f = dL_h/dz``, so the read-out is one step of the two-layer network of §1 with that
Lagrangian (see :mod:`assocmem.keyvalue.preset`). The paper uses the softmax and names the other choices used by
key-value memories (its introduction): the step function of Kanerva's sparse distributed memory and the hard max
of memory networks. The linear read-out is added here because it turns the memory into the Hebbian outer-product
(correlation-matrix) memory, the one-step read-out of the classical network:

| name | ``L_h(z)`` | ``f(z)`` |
|---|---|---|
| ``"softmax"`` | ``beta^-1 log sum_i exp(beta z_i)`` (:class:`~assocmem.lagrangians.LogSumExp`) | ``softmax(beta z)`` |
| ``"hardmax"`` | ``max_i z_i`` (:class:`Max`, the softmax's ``beta -> inf`` limit) | one-hot of the largest ``z_i`` |
| ``"step"`` | ``sum_i max(z_i - theta, 0)`` (:class:`Step`) | ``1[z_i > theta]`` |
| ``"linear"`` | ``1/2 sum_i z_i^2`` (:class:`~assocmem.lagrangians.Identity`) | ``z`` |

All four are convex, so the two-layer network they belong to descends its energy (docs/reference.md §1).
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as TF

from assocmem.checks import positive_float
from assocmem.lagrangians import AdditiveLagrangian, Identity, Lagrangian, LogSumExp
from assocmem.lagrangians.base import check_batched

#: The read-outs :class:`~assocmem.keyvalue.KeyValueMemory` accepts.
READOUTS = ("softmax", "hardmax", "step", "linear")


class Max(Lagrangian):
    """``L(z) = max_i z_i`` over a sample's units; its activation is the one-hot vector of the largest unit.

    The hard max (winner-take-all) read-out, the ``beta -> inf`` limit of ``LogSumExp(beta)``. On ties the first
    largest unit wins (a subgradient). Convex: a maximum of linear functions. A building block: a sample holding
    NaN gets a NaN activity (NaN in, NaN out, docs/bad-input.md), not the one-hot of the NaN's unit.
    """

    convex = True

    def forward(self, x: Tensor) -> Tensor:
        check_batched(x, "Max")
        return x.reshape(x.shape[0], -1).amax(dim=1)

    def activation(self, x: Tensor) -> Tensor:
        flat = x.reshape(x.shape[0], -1)
        winner = flat.argmax(dim=1, keepdim=True)  # torch's argmax picks a NaN when there is one
        hot = TF.one_hot(winner.squeeze(1), flat.shape[1]).to(x.dtype)
        return hot.masked_fill(flat.gather(1, winner).isnan(), float("nan")).reshape(x.shape)


class Step(AdditiveLagrangian):
    """``L(z) = sum_i max(z_i - theta, 0)``; its activation is the step ``1[z_i > theta]``.

    The read-out of Kanerva's sparse distributed memory: every hidden unit whose key matches the query by more than
    ``theta`` takes part, with weight one. Convex (a sum of rectified lines). A building block: NaN in, NaN out
    (docs/bad-input.md), where the comparison alone would give 0.
    """

    convex = True

    def __init__(self, threshold: float = 0.0) -> None:
        super().__init__()
        try:
            t = float(threshold)
        except (TypeError, ValueError, RuntimeError):  # RuntimeError: a meta tensor has no value
            raise TypeError(f"Step: threshold must be a number, got {threshold!r}") from None
        if t != t or t in (float("inf"), float("-inf")):
            raise ValueError(f"Step: threshold must be a finite number, got {threshold!r}")
        self.threshold = t

    def F(self, x: Tensor) -> Tensor:
        return torch.relu(x - self.threshold)

    def dF(self, x: Tensor) -> Tensor:
        return torch.where(x.isnan(), x, (x > self.threshold).to(x.dtype))

    def extra_repr(self) -> str:
        return f"threshold={self.threshold:g}"


def readout_lagrangian(readout: str, beta: float = 1.0, threshold: float = 0.0) -> Lagrangian:
    """The hidden-layer Lagrangian whose activation is the read-out ``readout`` (one of :data:`READOUTS`).

    ``beta`` is the softmax's inverse temperature; ``threshold`` the step's threshold ``theta``; each is checked
    when its read-out uses it.
    """
    if not isinstance(readout, str):
        raise TypeError(f"readout_lagrangian: readout must be one of {READOUTS}, got {readout!r}")
    if readout == "softmax":
        return LogSumExp(positive_float(beta, "beta", "readout_lagrangian"))
    if readout == "hardmax":
        return Max()
    if readout == "step":
        return Step(threshold)
    if readout == "linear":
        return Identity()
    raise ValueError(f"readout_lagrangian: readout must be one of {READOUTS}, got {readout!r}")
