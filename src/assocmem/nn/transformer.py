"""Hopfield encoder and decoder layers, usable in place of ``torch.nn.TransformerEncoderLayer`` /
``TransformerDecoderLayer`` (inside ``torch.nn.TransformerEncoder`` / ``TransformerDecoder`` too).

The structure is torch's post-norm layer with the attention replaced by a :class:`Hopfield` association
(docs/reference.md §2): ``x = norm(x + dropout(hopfield(x)))``, then ``x = norm(x + dropout(ff(x)))`` with
``ff(x) = W_2 dropout(act(W_1 x))``. Parameter names follow hflayers' layers.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import Tensor, nn

from assocmem.nn.hopfield import Hopfield


def _activation(activation: str | Callable[[Tensor], Tensor]) -> Callable[[Tensor], Tensor]:
    if callable(activation):
        return activation
    fn = getattr(torch, activation, None)
    if not callable(fn):
        raise ValueError(f"activation must be a callable or the name of a torch function, got {activation!r}")
    return fn


class _FeedForward(nn.Module):
    def _feedforward_init(self, width: int, dim_feedforward: int, dropout: float, activation: object) -> None:
        self.linear_residual = nn.Linear(width, dim_feedforward)
        self.dropout_residual = nn.Dropout(dropout)
        self.linear_output = nn.Linear(dim_feedforward, width)
        self.norm_output = nn.LayerNorm(width)
        self.dropout_output = nn.Dropout(dropout)
        self.activation_residual = _activation(activation)

    def _feedforward(self, x: Tensor) -> Tensor:
        inner = self.dropout_residual(self.activation_residual(self.linear_residual(x)))
        return self.norm_output(x + self.dropout_output(self.linear_output(inner)))


class HopfieldEncoderLayer(_FeedForward):
    """A transformer encoder layer whose self-attention is the Hopfield association ``hopfield_association``
    (a :class:`Hopfield`, copied). ``forward(src, src_mask, src_key_padding_mask, is_causal)`` as torch's."""

    def __init__(
        self,
        hopfield_association: Hopfield,
        dim_feedforward: int = 2048,
        dropout: float = 0.1,
        activation: str | Callable[[Tensor], Tensor] = "relu",
    ) -> None:
        super().__init__()
        self.hopfield_association = copy.deepcopy(hopfield_association)
        width = self.hopfield_association.state_pattern_dim
        self._feedforward_init(width, dim_feedforward, dropout, activation)
        self.norm_residual = nn.LayerNorm(width)
        self.dropout_hopfield_association = nn.Dropout(dropout)

    @property
    def self_attn(self) -> Hopfield:
        """The association, under the name ``torch.nn.TransformerEncoder`` looks for."""
        return self.hopfield_association

    def forward(
        self,
        src: Tensor,
        src_mask: Tensor | None = None,
        src_key_padding_mask: Tensor | None = None,
        is_causal: bool = False,
    ) -> Tensor:
        """``is_causal`` is a hint only (as in torch): pass the causal mask as ``src_mask``."""
        x = self.hopfield_association(
            src, stored_pattern_padding_mask=src_key_padding_mask, association_mask=src_mask
        )
        src = self.norm_residual(src + self.dropout_hopfield_association(x))
        return self._feedforward(src)


class HopfieldDecoderLayer(_FeedForward):
    """A transformer decoder layer: Hopfield self-association on the target, then Hopfield cross-association
    with the encoder's output (``memory``: the stored patterns and pattern projections), then the
    feed-forward block. ``forward`` takes torch's ``TransformerDecoderLayer`` arguments."""

    def __init__(
        self,
        hopfield_association_self: Hopfield,
        hopfield_association_cross: Hopfield,
        dim_feedforward: int = 2048,
        dropout: float = 0.1,
        activation: str | Callable[[Tensor], Tensor] = "relu",
    ) -> None:
        super().__init__()
        self.hopfield_association_self = copy.deepcopy(hopfield_association_self)
        self.hopfield_association_cross = copy.deepcopy(hopfield_association_cross)
        width = self.hopfield_association_self.state_pattern_dim
        self._feedforward_init(width, dim_feedforward, dropout, activation)
        self.norm_residual_self = nn.LayerNorm(width)
        self.norm_residual_cross = nn.LayerNorm(width)
        self.dropout_hopfield_association_self = nn.Dropout(dropout)
        self.dropout_hopfield_association_cross = nn.Dropout(dropout)

    @property
    def self_attn(self) -> Hopfield:
        """The self-association, under the name ``torch.nn.TransformerDecoder`` looks for."""
        return self.hopfield_association_self

    def forward(
        self,
        tgt: Tensor,
        memory: Tensor,
        tgt_mask: Tensor | None = None,
        memory_mask: Tensor | None = None,
        tgt_key_padding_mask: Tensor | None = None,
        memory_key_padding_mask: Tensor | None = None,
        tgt_is_causal: bool = False,
        memory_is_causal: bool = False,
    ) -> Tensor:
        """The causal flags are hints only (as in torch): pass the masks."""
        x = self.hopfield_association_self(
            tgt, stored_pattern_padding_mask=tgt_key_padding_mask, association_mask=tgt_mask
        )
        tgt = self.norm_residual_self(tgt + self.dropout_hopfield_association_self(x))
        x = self.hopfield_association_cross(
            (memory, tgt, memory),
            stored_pattern_padding_mask=memory_key_padding_mask,
            association_mask=memory_mask,
        )
        tgt = self.norm_residual_cross(tgt + self.dropout_hopfield_association_cross(x))
        return self._feedforward(tgt)
