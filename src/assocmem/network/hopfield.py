"""A Hopfield memory over tokens (Hoover et al. 2023; docs/reference.md §6).

Every token ``g_C`` of a token layer ``(T, D)`` is compared with ``K`` memories ``xi_mu`` (rows of a ``(K, D)``
matrix) and the energy rewards the best matches:

    E_HN = -sum_C L_h(xi g_C)

with the memory neurons' Lagrangian ``L_h``: ``ReLU()`` gives ``-1/2 sum_C sum_mu relu(xi_mu . g_C)^2``,
``LogSumExp(beta)`` gives ``-(1/beta) sum_C log sum_mu exp(beta xi_mu . g_C)``. It is the many-body term of
:mod:`assocmem.network.manybody` (a hidden layer integrated out) applied to every token on its own, with one memory
matrix shared by the tokens. The force on a token is ``xi^T f(xi g_C)``, ``f = dL_h/du`` the memory activation.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from torch import Tensor

from assocmem.lagrangians import Lagrangian, ReLU
from assocmem.network.synapse import register_weight
from assocmem.network.term import LayerTerm


class HopfieldTerm(LayerTerm):
    """``E = -sum_C L_h(xi g_C)``: ``K`` memories ``xi`` (shape ``(K, D)``) shared by every token of a layer.

    The layer has shape ``(T, D)`` (``T`` tokens) or ``(D,)`` (one token). ``lagrangian`` is the memory neurons'
    Lagrangian, evaluated for each token separately: ``ReLU()`` (default) for the ReLU-squared energy,
    ``LogSumExp(beta)`` for the log-sum-exp one, or any other. Pass ``xi`` as an ``nn.Parameter`` to learn the
    memories. Forces are in closed form.

    The energy is bounded below when the tokens' activations are (layer-norm neurons per token,
    ``LayerNorm(dim=-1)``, or spherical ones); with unbounded activations the ReLU-squared form is not.

    Example: ``HopfieldTerm("tokens", nn.Parameter(0.02 * torch.randn(256, 64)), LogSumExp(beta=2.0))``.
    """

    kind = "hopfield"

    def __init__(
        self,
        layer: str,
        xi: Tensor,
        lagrangian: Lagrangian | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__(layer, name)
        register_weight(self, xi, "HopfieldTerm", (2,), "xi")
        if lagrangian is None:
            lagrangian = ReLU()
        if not isinstance(lagrangian, Lagrangian):
            raise TypeError(
                f"HopfieldTerm: lagrangian must be an assocmem Lagrangian such as ReLU() or LogSumExp(beta), "
                f"got {type(lagrangian).__name__}"
            )
        self.lagrangian = lagrangian

    def bind(self, shapes: Mapping[str, tuple[int, ...]]) -> None:
        shape = tuple(shapes[self.layer])
        width = self.xi.shape[1]
        if len(shape) not in (1, 2) or shape[-1] != width:
            raise ValueError(
                f"HopfieldTerm {self.name!r}: layer {self.layer!r} must have shape (tokens, {width}) or ({width},) "
                f"for memories of shape {tuple(self.xi.shape)}; it has shape {shape}"
            )

    def potential(self, g: Mapping[str, Tensor]) -> Tensor:
        """``xi g_C`` for every token, flattened to ``(batch * T, K)``: each row is one token's memory input."""
        return g[self.layer].reshape(-1, self.xi.shape[1]) @ self.xi.T

    def _energy(self, u: Tensor, batch: int) -> Tensor:
        return -self.lagrangian(u).reshape(batch, -1).sum(1)

    def energy(self, g: Mapping[str, Tensor], inputs: Mapping[str, Tensor] | None = None) -> Tensor:
        return self._energy(self.potential(g), g[self.layer].shape[0])

    def energy_and_forces(
        self,
        g: Mapping[str, Tensor],
        inputs: Mapping[str, Tensor] | None = None,
        need_energy: bool = True,
        targets: Collection[str] | None = None,
    ) -> tuple[Tensor | None, dict[str, Tensor]]:
        x = g[self.layer]
        u = self.potential(g)
        energy = self._energy(u, x.shape[0]) if need_energy else None
        if targets is not None and self.layer not in targets:
            return energy, {}
        force = (self.lagrangian.activation(u) @ self.xi).reshape(x.shape)
        return energy, {self.layer: force}

    def extra_repr(self) -> str:
        return f"{self.layer!r}, memories={tuple(self.xi.shape)}, lagrangian={self.lagrangian!r}"
