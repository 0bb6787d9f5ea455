"""Energy terms: any function of the activations of some layers (docs/reference.md §1 and §4).

A network's energy is the layers' Legendre terms plus a sum of energy terms. The two-body synapses of
:mod:`assocmem.network.synapse` are energy terms, and so is the many-body term left behind when a layer is
integrated out. A custom term (pooling, attention, a constraint) is one line: a function of the activations of
the layers it names, batch first, returning the energy of every sample::

    quartic = EnergyTerm.of(lambda g: -(g["v"] ** 4).sum(1), "v")
    net = Network(layers, [DenseSynapse("v", "h", xi), quartic])

Its forces ``F_A = -dE/dg_A`` (the input it sends into each layer ``A`` it names) come from automatic
differentiation, so the dynamics ``tau_A dx_A/dt = F_A + ... - x_A`` descend the total energy as for any other
term. A subclass of :class:`EnergyTerm` that implements :meth:`EnergyTerm.energy` is the longer form, for a term
with its own parameters or a closed-form force.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator, Mapping

import torch
from torch import Tensor, nn


def check_layer_name(value: object, arg: str, who: str) -> str:
    """A layer or term name: a non-empty string without ``'.'`` (module names in ``nn.Module`` cannot hold one)."""
    if not isinstance(value, str) or not value or "." in value:
        raise ValueError(f"{who}: {arg} must be a non-empty layer name without '.', got {value!r}")
    return value


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
        self,
        g: Mapping[str, Tensor],
        inputs: Mapping[str, Tensor] | None = None,
        need_energy: bool = True,
        targets: Collection[str] | None = None,
    ) -> tuple[Tensor | None, dict[str, Tensor]]:
        """Energy (or None when not needed) and forces together, sharing work. Default: autograd of :meth:`energy`.

        ``targets`` names the layers whose forces are wanted (default: every layer the term names); the others
        (clamped layers) are not differentiated. An override should accept ``targets`` too; one that does not is
        still called, and its extra forces are dropped.
        """
        # The forces keep a graph only when something upstream needs it: a state that requires grad, or any
        # trainable tensor the energy reaches (the term's parameters or buffers, or a tensor a callable captures,
        # or the activation of a layer held fixed). A graph back to the detached leaves alone would serve nobody
        # and chain every step of a relaxation.
        names = self.layers if targets is None else tuple(n for n in self.layers if n in targets)
        grad_mode = torch.is_grad_enabled()
        with torch.enable_grad():
            leaves = {}
            for name in names:
                t = g[name]
                leaves[name] = t if (grad_mode and t.requires_grad) else t.detach().requires_grad_(True)
            energy = self.energy({**g, **leaves}, inputs)
            create_graph = grad_mode and (
                any(g[name].requires_grad for name in names) or reaches_beyond(energy, leaves.values())
            )
            grads: tuple[Tensor | None, ...] = (None,) * len(leaves)
            if energy.requires_grad and leaves:  # a term may ignore some (or all) of the layers it names
                grads = torch.autograd.grad(
                    energy.sum(), list(leaves.values()), create_graph=create_graph, allow_unused=True
                )
        forces = {
            name: torch.zeros_like(t) if grad is None else -grad
            for (name, t), grad in zip(leaves.items(), grads, strict=True)
        }
        if not create_graph:
            energy = energy.detach()
        return (energy if need_energy else None), forces

    def bind(self, shapes: Mapping[str, tuple[int, ...]]) -> None:
        """Called by :class:`~assocmem.Network` with the shapes of the layers; raise ValueError on a mismatch."""

    @staticmethod
    def of(
        fn: Callable[[Mapping[str, Tensor]], Tensor], *layers: str, name: str | None = None
    ) -> FunctionTerm:
        """The energy term ``E = fn(g)`` of the activations of ``layers``: a custom term in one line.

        ``fn`` receives the activations of the named layers (a mapping ``name -> (batch, *shape)``; reading a
        layer not named is an error, since its force would be missing) and returns the energy of every sample,
        shape ``(batch,)``. It must be differentiable in the activations; ``-dE/dg`` comes from autograd. An
        ``nn.Module`` ``fn`` has its parameters trained with the network (also through the dynamics); gradients
        also reach a tensor that requires grad and that ``fn`` captures (the forces keep their graph whenever the
        energy reaches such a tensor). ``name``
        (unique within a network) defaults to ``fn``'s name, or ``"custom_<layers>"`` for a lambda;
        :meth:`Network.energy_terms` lists the term under ``"custom:<name>"``.

        Example: ``EnergyTerm.of(lambda g: -(g["v"] ** 4).sum(1), "v")`` rewards large activations of ``v``;
        ``EnergyTerm.of(lambda g: (g["v"].sum(1) - g["h"].sum(1)) ** 2, "v", "h", name="balance")``.
        """
        return FunctionTerm(fn, *layers, name=name)


class LayerTerm(EnergyTerm):
    """Base class of a term on the activations of one layer: sets ``layer``, ``layers = (layer,)`` and ``name``
    (default ``"<layer>-<kind>"``, e.g. ``"tokens-attention"``)."""

    def __init__(self, layer: str, name: str | None = None) -> None:
        super().__init__()
        who = type(self).__name__
        self.layer = check_layer_name(layer, "layer", who)
        self.layers = (layer,)
        self.name = check_layer_name(name, "name", who) if name is not None else f"{layer}-{self.kind}"


def reaches_beyond(output: Tensor, leaves: Iterable[Tensor]) -> bool:
    """Whether the autograd graph of ``output`` reaches a tensor that requires grad other than ``leaves``: a
    parameter, a buffer or a captured tensor whose gradient must flow through the forces."""
    own = {id(t) for t in leaves}
    stack, seen = [output.grad_fn], set()
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        variable = getattr(node, "variable", None)  # an AccumulateGrad node: a tensor created by the user
        if variable is not None and id(variable) not in own:
            return True
        stack.extend(next_node for next_node, _ in node.next_functions)
    return False


class _Named(Mapping[str, Tensor]):
    """The activations a :class:`FunctionTerm` declared; reading another layer is a clear error."""

    def __init__(self, g: Mapping[str, Tensor], term: FunctionTerm) -> None:
        self._g = g
        self._term = term

    def __getitem__(self, key: str) -> Tensor:
        if key not in self._term.layers:
            raise KeyError(
                f"energy term {self._term.name!r} reads layer {key!r} but names only {self._term.layers}; "
                f"list every layer it reads, e.g. EnergyTerm.of(fn, {', '.join(map(repr, (*self._term.layers, key)))})"
            )
        return self._g[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._term.layers)

    def __len__(self) -> int:
        return len(self._term.layers)


class FunctionTerm(EnergyTerm):
    """``E = fn(g)``, a function of the activations of some layers; made by :meth:`EnergyTerm.of`."""

    kind = "custom"

    def __init__(
        self, fn: Callable[[Mapping[str, Tensor]], Tensor], *layers: str, name: str | None = None
    ) -> None:
        super().__init__()
        if not callable(fn):
            raise TypeError(
                f"EnergyTerm.of: fn must be a callable of the activations, got {type(fn).__name__}"
            )
        if not layers:
            raise ValueError("EnergyTerm.of: name at least one layer whose activations fn reads, e.g. 'v'")
        for layer in layers:
            check_layer_name(layer, "every layer", "EnergyTerm.of")
        if len(set(layers)) != len(layers):
            raise ValueError(f"EnergyTerm.of: layers must be distinct, got {layers}")
        if name is None:
            own = getattr(fn, "__name__", "<lambda>")
            name = own if own.isidentifier() else "custom_" + "_".join(layers)
        self.name = check_layer_name(name, "name", "EnergyTerm.of")
        self.layers = tuple(layers)
        self.fn = fn  # an nn.Module is registered as a submodule, so its parameters train with the network

    def energy(self, g: Mapping[str, Tensor], inputs: Mapping[str, Tensor] | None = None) -> Tensor:
        named = _Named(g, self)
        energy = self.fn(named)
        like = g[self.layers[0]]
        if not isinstance(energy, Tensor):
            raise TypeError(
                f"energy term {self.name!r}: fn must return a tensor of shape (batch,), got {type(energy).__name__}"
            )
        if energy.shape != like.shape[:1]:
            raise ValueError(
                f"energy term {self.name!r}: fn must return the energy of every sample, shape (batch,) = "
                f"{tuple(like.shape[:1])}, got {tuple(energy.shape)}; sum over the feature dimensions, "
                f"e.g. (...).sum(1), and not over the batch"
            )
        return energy

    def extra_repr(self) -> str:
        return f"name={self.name!r}, layers={self.layers}"
