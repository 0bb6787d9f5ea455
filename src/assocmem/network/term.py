"""Energy terms: any function of the activations of some layers (docs/reference.md §1 and §4).

A network's energy is the layers' Legendre terms plus a sum of energy terms. The two-body synapses of
:mod:`assocmem.network.synapse` are energy terms, and so is the many-body term left behind when a layer is
integrated out. A custom term (pooling, attention, a constraint) only has to implement :meth:`EnergyTerm.energy`;
its forces ``-dE/dg`` then come from automatic differentiation.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn


class EnergyTerm(nn.Module):
    """A term of the network energy that depends on the activations of the layers named in :attr:`layers`.

    Subclasses set ``self.layers`` (the names of the layers whose activations it reads), ``self.name`` (unique
    within a network) and implement :meth:`energy`. Override :meth:`forces` or :meth:`energy_and_forces` for a
    closed form; the default takes ``-dE/dg`` by autograd.
    """

    layers: tuple[str, ...] = ()
    name: str = "term"
    #: Prefix of the term's key in :meth:`~assocmem.Network.energy_terms`.
    kind: str = "term"

    @property
    def input_shapes(self) -> dict[str, tuple[int, ...]]:
        """Names (besides the network's layers) under which the term accepts an input current, with shapes."""
        return {}

    def energy(self, g: Mapping[str, Tensor], inputs: Mapping[str, Tensor] | None = None) -> Tensor:
        """The term's energy per sample, shape ``(batch,)``."""
        raise NotImplementedError  # pragma: no cover - abstract

    def forces(
        self, g: Mapping[str, Tensor], inputs: Mapping[str, Tensor] | None = None
    ) -> dict[str, Tensor]:
        """``-dE/dg_A`` for every layer ``A`` the term touches (shape of ``g_A``)."""
        return self.energy_and_forces(g, inputs, need_energy=False)[1]

    def energy_and_forces(
        self, g: Mapping[str, Tensor], inputs: Mapping[str, Tensor] | None = None, need_energy: bool = True
    ) -> tuple[Tensor | None, dict[str, Tensor]]:
        """Energy (or None when not needed) and forces together, sharing work. Default: autograd of :meth:`energy`."""
        create_graph = torch.is_grad_enabled()
        with torch.enable_grad():
            leaves = {}
            for name in self.layers:
                t = g[name]
                leaves[name] = t if (create_graph and t.requires_grad) else t.detach().requires_grad_(True)
            energy = self.energy({**g, **leaves}, inputs)
            grads = torch.autograd.grad(energy.sum(), list(leaves.values()), create_graph=create_graph)
        forces = {name: -grad for name, grad in zip(leaves, grads, strict=True)}
        if not create_graph:
            energy = energy.detach()
        return (energy if need_energy else None), forces

    def bind(self, shapes: Mapping[str, tuple[int, ...]]) -> None:
        """Called by :class:`~assocmem.Network` with the shapes of the layers; raise ValueError on a mismatch."""
