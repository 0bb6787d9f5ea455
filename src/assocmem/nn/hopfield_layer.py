"""``HopfieldLayer``: the input retrieves from trainable stored patterns (a learned memory; docs/reference.md §2)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from assocmem.checks import is_count
from assocmem.nn.hopfield import Hopfield
from assocmem.nn.learned_patterns import LearnedPatterns


class HopfieldLayer(LearnedPatterns):
    """A lookup: the input (state patterns ``R``) retrieves from ``quantity`` trainable stored patterns
    (``lookup_weights``, the memories ``Y``); the pattern projections are the same weights or, with
    ``lookup_weights_as_separated=True``, separate targets (``target_weights``), frozen when
    ``lookup_targets_as_trainable=False``. ``trainable=False`` freezes the stored patterns. Every other keyword
    is a :class:`Hopfield` option. This is a layer with fixed (learned) stored patterns:
    ``layer.retrieve(x)`` runs Model B on them in one call.
    """

    def __init__(
        self,
        input_size: int,
        *,
        quantity: int = 1,
        trainable: bool = True,
        lookup_weights_as_separated: bool = False,
        lookup_targets_as_trainable: bool = True,
        **options: Any,
    ) -> None:
        super().__init__()
        if not is_count(quantity):
            raise ValueError(f"HopfieldLayer: quantity must be a positive int, got {quantity!r}")
        self.hopfield = Hopfield(input_size=input_size, **options)
        self.quantity = quantity
        core = self.hopfield.association_core
        width = core.head_dim if options.get("stored_pattern_as_static") else core.kdim
        width = input_size if width is None else width
        shape = (1, quantity) if self.hopfield.batch_first else (quantity, 1)
        self.lookup_weights = nn.Parameter(torch.empty(*shape, width), requires_grad=trainable)
        if lookup_weights_as_separated:
            target = options.get("pattern_projection_size") or width
            self.target_weights = nn.Parameter(
                torch.empty(*shape, target), requires_grad=lookup_targets_as_trainable
            )
        else:
            self.register_parameter("target_weights", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Reset the Hopfield layer and draw the stored patterns (and targets) from N(0, 0.02)."""
        self.hopfield.reset_parameters()
        nn.init.normal_(self.lookup_weights, mean=0.0, std=0.02)
        if self.target_weights is not None:
            nn.init.normal_(self.target_weights, mean=0.0, std=0.02)

    def _inputs(self, input: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        input = self._sequence(input, "input", 1)
        batch = input.shape[0 if self.hopfield.batch_first else 1]
        shape = (batch, self.quantity) if self.hopfield.batch_first else (self.quantity, batch)
        stored = self.lookup_weights.expand(*shape, -1)
        targets = stored if self.target_weights is None else self.target_weights.expand(*shape, -1)
        return stored, input, targets

    def forward(
        self,
        input: Tensor,
        stored_pattern_padding_mask: Tensor | None = None,
        association_mask: Tensor | None = None,
    ) -> Tensor:
        """The retrieved patterns for every state pattern of ``input``."""
        inputs, masks = self._inputs(input), (stored_pattern_padding_mask, association_mask)
        return self._checked(lambda: self.hopfield(inputs, *masks), input, masks, lambda out: out)
