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

from assocmem.checks import is_count
from assocmem.nn.arguments import check_sequence, first_tensor, run_checked
from assocmem.nn.hopfield import Hopfield


def _activation(activation: str | Callable[[Tensor], Tensor]) -> Callable[[Tensor], Tensor]:
    if callable(activation):
        return activation
    fn = getattr(torch, activation, None)
    if not callable(fn):
        raise ValueError(f"activation must be a callable or the name of a torch function, got {activation!r}")
    return fn


def _check_hopfield(value: object, name: str, who: str) -> None:
    if not isinstance(value, Hopfield):
        raise TypeError(f"{who}: {name} must be an assocmem.nn.Hopfield layer, got {type(value).__name__}")
    if value.state_pattern_dim is None:
        raise ValueError(f"{who}: {name} needs an input_size (the model's width)")


class _FeedForward(nn.Module):
    def _feedforward_init(self, width: int, dim_feedforward: int, dropout: float, activation: object) -> None:
        who = type(self).__name__
        if not is_count(dim_feedforward):
            raise ValueError(f"{who}: dim_feedforward must be a positive int, got {dim_feedforward!r}")
        if isinstance(dropout, bool) or not (isinstance(dropout, (int, float)) and 0 <= dropout < 1):
            raise ValueError(f"{who}: dropout must be a number in [0, 1), got {dropout!r}")
        self.linear_residual = nn.Linear(width, dim_feedforward)
        self.dropout_residual = nn.Dropout(dropout)
        self.linear_output = nn.Linear(dim_feedforward, width)
        self.norm_output = nn.LayerNorm(width)
        self.dropout_output = nn.Dropout(dropout)
        self.activation_residual = _activation(activation)

    def _sequence(self, value: object, name: str, width: int | None = None) -> Tensor:
        """A tensor argument of ``forward``, checked under its name (the model's width unless ``width``); every
        sequence here is the memory of a Hopfield association, so it must not be empty."""
        length = 1 if self.self_attn.batch_first else 0
        width = width or self.norm_output.normalized_shape[0]
        return check_sequence(value, name, type(self).__name__, width, first_tensor(self), length)

    def _checked(self, call: Callable[[], Tensor], suspects: list[tuple[str, object]]) -> Tensor:
        return run_checked(
            type(self).__name__, [*suspects, ("layer's parameters", self)], call, lambda out: out
        )

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
        _check_hopfield(hopfield_association, "hopfield_association", "HopfieldEncoderLayer")
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
        """``is_causal`` is a hint only (as in torch): pass the causal mask as ``src_mask``. The masks follow
        torch's transformer layers (and hflayers): a boolean ``True`` hides a pair, a float is added."""
        src = self._sequence(src, "src")

        def call() -> Tensor:
            x = self.hopfield_association(
                src, stored_pattern_padding_mask=src_key_padding_mask, association_mask=src_mask
            )
            return self._feedforward(self.norm_residual(src + self.dropout_hopfield_association(x)))

        return self._checked(
            call, [("src", src), ("src_mask", src_mask), ("src_key_padding_mask", src_key_padding_mask)]
        )


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
        _check_hopfield(hopfield_association_self, "hopfield_association_self", "HopfieldDecoderLayer")
        _check_hopfield(hopfield_association_cross, "hopfield_association_cross", "HopfieldDecoderLayer")
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
        """The causal flags are hints only (as in torch): pass the masks. The masks follow torch's transformer
        layers (and hflayers): a boolean ``True`` hides a pair, a float is added."""
        tgt = self._sequence(tgt, "tgt")
        memory = self._sequence(memory, "memory", self.hopfield_association_cross._widths()[0])

        def call() -> Tensor:
            x = self.hopfield_association_self(
                tgt, stored_pattern_padding_mask=tgt_key_padding_mask, association_mask=tgt_mask
            )
            t = self.norm_residual_self(tgt + self.dropout_hopfield_association_self(x))
            x = self.hopfield_association_cross(
                (memory, t, memory),
                stored_pattern_padding_mask=memory_key_padding_mask,
                association_mask=memory_mask,
            )
            return self._feedforward(self.norm_residual_cross(t + self.dropout_hopfield_association_cross(x)))

        masks = [
            ("tgt_mask", tgt_mask),
            ("memory_mask", memory_mask),
            ("tgt_key_padding_mask", tgt_key_padding_mask),
        ]
        masks.append(("memory_key_padding_mask", memory_key_padding_mask))
        return self._checked(call, [("tgt", tgt), ("memory", memory), *masks])
