"""Named models: every one is a preset of the general :class:`~assocmem.network.Network` (docs/reference.md
§1-3): the microscopic two-layer network, models A, B and C, the continuous Hopfield network, and KH16's
interaction ``F`` as a hidden Lagrangian. The fast paths that compute the same models live in
:mod:`assocmem.engines`."""

from assocmem.models.effective import continuous_hopfield, model_a, model_b, model_c
from assocmem.models.interaction import KINDS, interaction
from assocmem.models.microscopic import FEATURE, HIDDEN, SYNAPSE, microscopic

__all__ = [
    "FEATURE",
    "HIDDEN",
    "KINDS",
    "SYNAPSE",
    "continuous_hopfield",
    "interaction",
    "microscopic",
    "model_a",
    "model_b",
    "model_c",
]
