"""Two-body synapses: energies bilinear in the activations of two layers (docs/reference.md §1 and §4).

A synapse between layers ``pre`` and ``post`` has energy ``E_s = -g_post . D(g_pre)`` for a linear map ``D``
(a matrix for :class:`DenseSynapse`, a convolution for :class:`~assocmem.network.conv.ConvSynapse`). Its force
on ``post`` is ``D(g_pre)``; on ``pre`` it is the adjoint ``D^T(g_post)``. This symmetry (one weight used in both
directions) is what makes the dynamics descend an energy. A synapse from a layer to itself has energy
``-1/2 g . D(g)`` and needs a symmetric ``D``.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

import torch
from torch import Tensor, nn
from torch.nn import functional as TF

from assocmem.lagrangians.base import sum_features
from assocmem.network.term import EnergyTerm, check_layer_name


def register_weight(
    module: nn.Module, weight: Tensor, who: str, dims: tuple[int, ...], name: str = "weight"
) -> None:
    """Keep ``weight`` as given, under ``name``: an ``nn.Parameter`` is registered as trainable, another tensor
    as a buffer."""
    if not isinstance(weight, Tensor):
        raise TypeError(f"{who}: {name} must be a torch.Tensor, got {type(weight).__name__}")
    if not weight.is_floating_point():
        raise TypeError(f"{who}: {name} must be a floating-point tensor, got dtype {weight.dtype}")
    if weight.dim() not in dims:
        raise ValueError(
            f"{who}: {name} must have {' or '.join(map(str, dims))} dimensions, got shape "
            f"{tuple(weight.shape)}"
        )
    if weight.numel() == 0:
        raise ValueError(f"{who}: {name} is empty (shape {tuple(weight.shape)})")
    if weight.is_meta:
        raise ValueError(f"{who}: {name} is on the meta device (a shape without values)")
    if not bool(torch.isfinite(weight.detach()).all()):
        raise ValueError(f"{who}: {name} contains NaN or infinite entries")
    if isinstance(weight, nn.Parameter):
        module.register_parameter(name, weight)
    else:
        module.register_buffer(name, weight)


class Synapse(EnergyTerm):
    """Base class of two-body synapses: subclasses implement :meth:`drive` (the linear map and its adjoint).

    The energy is ``-g_post . drive(post, g_pre)``; the network relies on it being bilinear: the drive out of a
    fully clamped layer is then a constant input current, computed once per relaxation (:meth:`Network.prepare`).
    """

    kind = "synapse"

    def __init__(self, pre: str, post: str, name: str | None = None) -> None:
        super().__init__()
        who = type(self).__name__
        self.pre = check_layer_name(pre, "pre", who)
        self.post = check_layer_name(post, "post", who)
        self.layers = (pre,) if pre == post else (pre, post)
        self.name = check_layer_name(name, "name", who) if name is not None else f"{pre}->{post}"
        #: The shapes of ``pre`` and ``post`` (without batch), set when the synapse joins a network.
        self.shapes: dict[str, tuple[int, ...]] = {}

    @property
    def recurrent(self) -> bool:
        """True for a synapse from a layer to itself."""
        return self.pre == self.post

    def other(self, target: str) -> str:
        """The layer at the other end from ``target``."""
        if target == self.post:
            return self.pre
        if target == self.pre:
            return self.post
        raise KeyError(f"{type(self).__name__} {self.name!r} does not touch layer {target!r}")

    def bind(self, shapes: Mapping[str, tuple[int, ...]]) -> None:
        """Record the layer shapes (subclasses check them first, then call this)."""
        self.shapes = {self.pre: tuple(shapes[self.pre]), self.post: tuple(shapes[self.post])}

    def drive(self, target: str, source: Tensor) -> Tensor:
        """The input this synapse sends into layer ``target`` when the other end has activation ``source``."""
        raise NotImplementedError  # pragma: no cover - abstract

    def energy(self, g: Mapping[str, Tensor], inputs: Mapping[str, Tensor] | None = None) -> Tensor:
        """``-g_post . D(g_pre)`` per sample (``-1/2 g . D(g)`` for a recurrent synapse)."""
        e = -sum_features(g[self.post] * self.drive(self.post, g[self.pre]))
        return 0.5 * e if self.recurrent else e

    def energy_and_forces(
        self,
        g: Mapping[str, Tensor],
        inputs: Mapping[str, Tensor] | None = None,
        need_energy: bool = True,
        targets: Collection[str] | None = None,
    ) -> tuple[Tensor | None, dict[str, Tensor]]:
        forces: dict[str, Tensor] = {}
        if targets is None or self.post in targets or (need_energy and self.pre not in targets):
            forces[self.post] = self.drive(self.post, g[self.pre])
        if not self.recurrent and (targets is None or self.pre in targets):
            forces[self.pre] = self.drive(self.pre, g[self.post])
        energy = None
        if need_energy:  # -g_post . D(g_pre) = -g_pre . D^T(g_post): whichever drive was computed
            if self.post in forces:
                energy = -sum_features(g[self.post] * forces[self.post])
            else:
                energy = -sum_features(g[self.pre] * forces[self.pre])
            if self.recurrent:
                energy = 0.5 * energy
        if targets is not None and self.post not in targets:
            forces.pop(self.post, None)
        return energy, forces


class DenseSynapse(Synapse):
    """Fully connected synapse with energy ``-g_post^T W g_pre``; ``W`` has shape ``(post size, pre size)``.

    Layers of any shape are flattened per sample. Pass an ``nn.Parameter`` to train ``W``; a plain tensor is
    kept as a buffer (gradients still flow to it if it requires grad). For a recurrent synapse (``pre == post``)
    ``W`` must be symmetric and the energy is ``-1/2 g^T W g``.

    Example: ``DenseSynapse("v", "h", patterns)`` connects feature layer ``v`` to memory layer ``h`` through the
    stored patterns ``xi`` (shape ``(K, N)``).
    """

    def __init__(self, pre: str, post: str, weight: Tensor, name: str | None = None) -> None:
        super().__init__(pre, post, name)
        register_weight(self, weight, "DenseSynapse", (2,))
        if self.recurrent:
            w = self.weight.detach()
            if w.shape[0] != w.shape[1] or not torch.allclose(
                w, w.T, rtol=1e-5, atol=1e-6 * float(w.abs().max())
            ):
                raise ValueError(
                    f"DenseSynapse {self.name!r}: a synapse from a layer to itself needs a symmetric square weight "
                    f"(its energy is -1/2 g^T W g); got shape {tuple(w.shape)}"
                    + ("" if w.shape[0] != w.shape[1] else " that is not symmetric")
                )

    def bind(self, shapes: Mapping[str, tuple[int, ...]]) -> None:
        n_post = int(torch.Size(shapes[self.post]).numel())
        n_pre = int(torch.Size(shapes[self.pre]).numel())
        if tuple(self.weight.shape) != (n_post, n_pre):
            raise ValueError(
                f"DenseSynapse {self.name!r}: weight has shape {tuple(self.weight.shape)} but layer {self.post!r} "
                f"has {n_post} units and layer {self.pre!r} has {n_pre}; expected shape ({n_post}, {n_pre}) "
                f"= (post size, pre size)"
            )
        super().bind(shapes)

    def drive(self, target: str, source: Tensor) -> Tensor:
        flat = source.flatten(1)
        if target == self.post:
            out = TF.linear(flat, self.weight)
        elif target == self.pre:
            out = flat @ self.weight
        else:
            raise KeyError(f"DenseSynapse {self.name!r} does not touch layer {target!r}")
        shape = self.shapes.get(target)
        return out if shape is None or len(shape) == 1 else out.reshape((out.shape[0], *shape))

    def extra_repr(self) -> str:
        return f"{self.pre!r} -> {self.post!r}, weight={tuple(self.weight.shape)}"
