"""Clamp masks and layers whose Lagrangian couples their units (docs/reference.md §1, docs/dynamics.md).

A Lagrangian that is not additive (softmax, spherical, layer norm, a custom one) makes every unit's activation
depend on the states of a whole group of units: a sample's layer, or a slice along ``dim`` for a softmax or a
layer norm taken along one dimension. Holding the *states* of some units of a group does not hold their
*activations*: a spherical or layer-norm activation does not change when the group's state is scaled (a softmax:
shifted), so the free units can shrink the held units' share by growing, and the dynamics need not settle
(measured on the MNIST reconstruction recipe, upper half of the digits held as spherical states: 17 of 1,000
test digits ran off, ``|x|`` up to 8e23; docs/ham.md, "Completing a masked image"). A clamp mask must
therefore hold each coupled group whole or not at all; one that cuts through a group is an error that names the
layer and what to do instead. Whole-group clamps keep the usual dynamics: a held group's activation is fixed.
"""

from __future__ import annotations

from torch import Tensor

from assocmem.lagrangians import AdditiveLagrangian, Lagrangian, LayerNorm, LogSumExp, Spherical
from assocmem.lagrangians.base import as_feature_dim


def couples(lagrangian: Lagrangian) -> bool:
    """Whether the Lagrangian's Hessian couples units of a layer (it is not additive)."""
    return not isinstance(lagrangian, AdditiveLagrangian)


def _group(lagrangian: Lagrangian) -> int | None:
    """The dimension a coupled group lies along (a softmax or layer norm with ``dim``), or None: the sample."""
    if isinstance(lagrangian, (LogSumExp, LayerNorm)):
        return lagrangian.dim
    return None


def check_partial(name: str, lagrangian: Lagrangian, mask: Tensor) -> None:
    """Raise a clear error if the clamp mask of layer ``name`` (broadcast to ``(batch, *shape)`` with the batch
    possibly 1) holds some but not all units of a group its coupled Lagrangian makes depend on each other."""
    if not couples(lagrangian):
        return
    dim = _group(lagrangian)
    axes = tuple(range(1, mask.dim())) if dim is None else (as_feature_dim(dim, mask, f"clamp[{name!r}]"),)
    cut = mask.any(axes) & ~mask.all(axes)
    if not bool(cut.any()):
        return
    group = "sample" if dim is None else f"slice along dim={dim}"
    hint = (
        "To complete an image whose known pixels are a spherical layer's activations, hold those activations "
        "with assocmem.ham.completion.complete (docs/ham.md, 'Completing a masked image'). "
        if isinstance(lagrangian, Spherical)
        else ""
    )
    raise ValueError(
        f"clamp[{name!r}] holds some units of layer {name!r} and frees others of the same {group}, but its "
        f"Lagrangian {lagrangian!r} makes each unit's activation depend on the whole {group}: holding their states "
        f"does not hold their activations, and the free units can scale (softmax: shift) the held ones' share "
        f"away, so the relaxation need not settle (docs/dynamics.md, 'Clamping part of a layer'). Clamp each "
        f"{group} of {name!r} whole or not at all. {hint}Otherwise give the held units a layer of their own with "
        f"an additive Lagrangian (such as Identity()), or feed them as input currents"
    )
