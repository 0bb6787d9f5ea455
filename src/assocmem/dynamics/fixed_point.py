"""The one result of every fixed-point loop: final states, energy history, steps taken, convergence flags.

:func:`assocmem.relax`, :func:`assocmem.retrieve`, :meth:`assocmem.BinaryDAM.recall` and the Hopfield layers'
update (:func:`assocmem.nn.functional.hopfield_update`) all iterate a state until it stops changing, and all
return a subclass of :class:`FixedPoint` with the same four fields, read the same way. Each subclass only adds
what its loop alone has (the integrator's statistics, the association weights, the layer's output).

The loops share one vocabulary of arguments too: ``max_steps`` (the most steps a sample may take), ``tol`` (the
change below which a sample counts as converged) and ``record`` (whether to keep the energy of every step).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class FixedPoint:
    """What a fixed-point loop returns; ``batch`` below is the shape of one energy per sample.

    - ``states``: the final states, ``(*batch, d)`` (for :func:`assocmem.relax` the state mapping, layer name
      to tensor);
    - ``energies``: the energy of every sample at every recorded step, ``(T, *batch)``, row 0 the start and the
      last row the final states (``None`` when the loop was asked not to record, except for
      :func:`assocmem.relax`, which then keeps the first and last rows);
    - ``steps``: the steps each sample took, an int64 tensor ``(*batch)`` (a sample stops once converged);
    - ``converged``: a bool tensor ``(*batch)``, True where the last step changed the sample by at most ``tol``.
    """

    states: Tensor | Mapping[str, Tensor]
    energies: Tensor | None
    steps: Tensor
    converged: Tensor

    @property
    def times(self) -> Tensor | None:
        """The time of every row of ``energies``: the step index ``0, 1, ..., T-1`` for the discrete loops
        (the energies' dtype and device); ``None`` when nothing was recorded."""
        e = self.energies
        return None if e is None else torch.arange(e.shape[0], dtype=e.dtype, device=e.device)

    @property
    def energy(self) -> Tensor | None:
        """The final energy per sample, ``(*batch)`` (the last row of ``energies``; ``None`` when not recorded)."""
        return None if self.energies is None else self.energies[-1]
