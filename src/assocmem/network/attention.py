"""The Energy Transformer's attention energy over tokens (Hoover et al. 2023; docs/reference.md §6).

A token layer has shape ``(T, D)``: ``T`` tokens of ``D`` units, activations ``g_A``. Each head ``h`` maps every
token to a key ``K_hB = W^K_h g_B`` and a query ``Q_hC = W^Q_h g_C`` (``Y`` units each), and

    E_ATT = -sum_h (1/beta_h) sum_C log sum_{B != C} exp(beta_h K_hB . Q_hC)

(a token never attends to itself). With ``A_hCB = softmax_B(beta_h K_hB . Q_hC)`` (``B != C``), the force on a
token is the sum of what it receives as a query and as a key:

    F_A = -dE_ATT/dg_A = sum_h [ W^Q_h^T sum_B A_hAB K_hB  +  W^K_h^T sum_C A_hCA Q_hC ].

The first part is ordinary attention (values ``W^Q^T K``); the second is what makes the update descend the energy.
``beta`` cancels from the forces. A token mask removes tokens from every sum, as keys and as queries.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping

import torch
from torch import Tensor, nn

from assocmem.network.synapse import register_weight
from assocmem.network.term import LayerTerm


class AttentionTerm(LayerTerm):
    """``E = -sum_h beta_h^-1 sum_C log sum_{B != C} exp(beta_h K_hB . Q_hC)`` on a token layer ``(T, D)``.

    ``key_weight`` and ``query_weight`` have shape ``(H, Y, D)`` (heads, key/query width, token width); pass
    ``nn.Parameter`` to train them. ``beta`` is a positive number, or a tensor of shape ``()`` or ``(H,)`` (one per
    head; an ``nn.Parameter`` trains it); the default is ``1 / sqrt(Y)``. ``mask`` is ``None`` (every token takes
    part) or a bool tensor of shape ``(T,)`` or ``(batch, T)``, True for the tokens that take part; change it with
    :meth:`set_mask`. A query with no other token to attend to adds nothing. Forces are in closed form.

    Use layer-norm neurons per token (``LayerNorm(dim=-1)``): their activations are bounded, so is this energy.

    Example: ``AttentionTerm("tokens", 0.1 * torch.randn(4, 16, 64), 0.1 * torch.randn(4, 16, 64))``.
    """

    kind = "attention"

    def __init__(
        self,
        layer: str,
        key_weight: Tensor,
        query_weight: Tensor,
        beta: float | Tensor | None = None,
        mask: Tensor | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__(layer, name)
        register_weight(self, key_weight, "AttentionTerm", (3,), "key_weight")
        register_weight(self, query_weight, "AttentionTerm", (3,), "query_weight")
        if self.key_weight.shape != self.query_weight.shape:
            raise ValueError(
                f"AttentionTerm: key_weight {tuple(self.key_weight.shape)} and query_weight "
                f"{tuple(self.query_weight.shape)} must have the same shape (heads, width, token width)"
            )
        heads, width, _ = self.key_weight.shape
        if beta is None:
            beta = 1.0 / math.sqrt(width)
        if isinstance(beta, Tensor):
            if beta.shape not in ((), (1,), (heads,)) or not beta.is_floating_point():
                raise ValueError(
                    f"AttentionTerm: beta must be a number or a float tensor of shape () or ({heads},) (one per "
                    f"head), got shape {tuple(beta.shape)}"
                )
            if beta.is_meta:
                raise ValueError("AttentionTerm: beta is on the meta device (a shape without values)")
            if not bool((beta.detach() > 0).all()) or not bool(torch.isfinite(beta.detach()).all()):
                raise ValueError("AttentionTerm: beta must be positive and finite")
            if isinstance(beta, nn.Parameter):
                self.register_parameter("beta", beta)
            else:
                self.register_buffer("beta", beta)
        else:
            if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not 0 < beta < math.inf:
                raise ValueError(f"AttentionTerm: beta must be a positive finite number, got {beta!r}")
            self.beta = float(beta)
        self.register_buffer("mask", None, persistent=False)  # per batch: not part of a checkpoint
        self._tokens: int | None = None
        self.set_mask(mask)

    @property
    def heads(self) -> int:
        return self.key_weight.shape[0]

    def set_mask(self, mask: Tensor | None) -> None:
        """Which tokens take part: ``None`` (all) or a bool tensor of shape ``(T,)`` or ``(batch, T)``."""
        if mask is not None:
            if not isinstance(mask, Tensor) or mask.dtype != torch.bool or mask.dim() not in (1, 2):
                raise TypeError(
                    f"AttentionTerm {self.name!r}: mask must be None or a bool tensor of shape (T,) or (batch, T), "
                    f"got {getattr(mask, 'dtype', type(mask).__name__)} of shape {tuple(getattr(mask, 'shape', ()))}"
                )
            if mask.is_meta:
                raise ValueError(
                    f"AttentionTerm {self.name!r}: mask is on the meta device (a shape without values)"
                )
            if self._tokens is not None and mask.shape[-1] != self._tokens:
                raise ValueError(
                    f"AttentionTerm {self.name!r}: mask has {mask.shape[-1]} tokens but layer {self.layer!r} has "
                    f"{self._tokens}"
                )
        self.mask = mask

    def bind(self, shapes: Mapping[str, tuple[int, ...]]) -> None:
        shape = tuple(shapes[self.layer])
        width = self.key_weight.shape[2]
        if len(shape) != 2 or shape[1] != width:
            raise ValueError(
                f"AttentionTerm {self.name!r}: layer {self.layer!r} must have shape (tokens, {width}) for weights of "
                f"shape {tuple(self.key_weight.shape)}; it has shape {shape}"
            )
        if self.mask is not None and self.mask.shape[-1] != shape[0]:
            raise ValueError(
                f"AttentionTerm {self.name!r}: mask has {self.mask.shape[-1]} tokens but layer {self.layer!r} has "
                f"{shape[0]}"
            )
        self._tokens = shape[0]

    # ----------------------------------------------------------------- the energy
    def _beta(self, like: Tensor) -> Tensor | float:
        """``beta`` shaped to broadcast against ``(batch, H, T, ...)`` (a float when it is one number)."""
        if isinstance(self.beta, Tensor):
            b = self.beta.to(like.dtype)
            return b.reshape(1, -1, 1, 1) if b.numel() > 1 else b.reshape(())
        return self.beta

    def _scores(self, g: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor | float]:
        """Keys, queries ``(batch, H, T, Y)``, the masked scores ``beta K_B . Q_C`` laid out ``(batch, H, C, B)``,
        the queries that attend to at least one token ``(batch or 1, 1, T)``, and beta."""
        batch, tokens, width = g.shape
        heads, y = self.key_weight.shape[:2]
        wk = self.key_weight.reshape(heads * y, width)
        wq = self.query_weight.reshape(heads * y, width)
        keys = (g @ wk.T).reshape(batch, tokens, heads, y).transpose(1, 2)
        queries = (g @ wq.T).reshape(batch, tokens, heads, y).transpose(1, 2)
        beta = self._beta(g)
        scores = (queries @ keys.transpose(-1, -2)) * beta
        allowed = ~torch.eye(tokens, dtype=torch.bool, device=g.device)
        if self.mask is not None:
            m = self.mask.to(g.device)
            if m.dim() == 2 and m.shape[0] not in (1, batch):
                raise ValueError(
                    f"AttentionTerm {self.name!r}: mask has batch size {m.shape[0]} but the state has {batch}"
                )
            m = m.reshape(-1, 1, tokens)  # (batch or 1, 1, T)
            allowed = allowed & m.unsqueeze(-1) & m.unsqueeze(-2)  # (batch or 1, 1, C, B)
        valid = allowed.any(-1)  # queries with someone to attend to
        # A query with nobody to attend to keeps its finite scores (so logsumexp and its gradient stay finite);
        # its row is then multiplied by zero.
        scores = scores.masked_fill(~(allowed | ~valid.unsqueeze(-1)), -math.inf)
        return keys, queries, scores, valid, beta

    def _energy(self, lse: Tensor, valid: Tensor, beta: Tensor | float) -> Tensor:
        per_query = torch.where(valid, lse, torch.zeros((), dtype=lse.dtype, device=lse.device))
        per_head = per_query.sum(-1)  # (batch, H)
        if isinstance(beta, Tensor):
            per_head = per_head / beta.reshape(1, -1) if beta.dim() else per_head / beta
        else:
            per_head = per_head / beta
        return -per_head.sum(-1)

    def energy(self, g: Mapping[str, Tensor], inputs: Mapping[str, Tensor] | None = None) -> Tensor:
        _, _, scores, valid, beta = self._scores(g[self.layer])
        return self._energy(torch.logsumexp(scores, -1), valid, beta)

    def energy_and_forces(
        self,
        g: Mapping[str, Tensor],
        inputs: Mapping[str, Tensor] | None = None,
        need_energy: bool = True,
        targets: Collection[str] | None = None,
    ) -> tuple[Tensor | None, dict[str, Tensor]]:
        x = g[self.layer]
        if targets is not None and self.layer not in targets:
            return (self.energy(g, inputs) if need_energy else None), {}
        keys, queries, scores, valid, beta = self._scores(x)
        lse = torch.logsumexp(scores, -1)  # (batch, H, C)
        weights = torch.exp(scores - lse.unsqueeze(-1)) * valid.unsqueeze(-1)  # A_hCB, zero rows for no query
        batch, tokens, width = x.shape
        heads, y = self.key_weight.shape[:2]
        as_query = (weights @ keys).transpose(1, 2).reshape(batch, tokens, heads * y)  # sum_B A_hAB K_hB
        as_key = (weights.transpose(-1, -2) @ queries).transpose(1, 2).reshape(batch, tokens, heads * y)
        force = as_query @ self.query_weight.reshape(heads * y, width) + as_key @ self.key_weight.reshape(
            heads * y, width
        )
        return (self._energy(lse, valid, beta) if need_energy else None), {self.layer: force}

    def extra_repr(self) -> str:
        heads, y, width = self.key_weight.shape
        beta = self.beta if not isinstance(self.beta, Tensor) else f"tensor{tuple(self.beta.shape)}"
        return f"{self.layer!r}, heads={heads}, width={y}, token_width={width}, beta={beta}" + (
            "" if self.mask is None else ", masked"
        )
