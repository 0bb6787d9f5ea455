"""``HopfieldPooling``: a learned state pattern (query) retrieves from the input set (docs/reference.md §2)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from assocmem.checks import is_count
from assocmem.nn.hopfield import Hopfield
from assocmem.nn.learned_patterns import LearnedPatterns


class HopfieldPooling(LearnedPatterns):
    """Pool a set: ``quantity`` trainable state patterns ``R`` (``pooling_weights``) retrieve from the input.

    The input (``(B, N, input_size)``, or a tuple ``(stored_pattern, pattern_projection)``) is the memory ``Y``;
    the output is ``softmax(beta Q K^T) V`` for the learned queries, flattened to ``(B, quantity * out)``.
    ``trainable=False`` freezes the query. Every other keyword is a :class:`Hopfield` option.
    """

    def __init__(self, input_size: int, *, quantity: int = 1, trainable: bool = True, **options: Any) -> None:
        super().__init__()
        if not is_count(quantity):
            raise ValueError(f"HopfieldPooling: quantity must be a positive int, got {quantity!r}")
        self.hopfield = Hopfield(input_size=input_size, **options)
        self.quantity = quantity
        width = self.hopfield.hidden_size if options.get("state_pattern_as_static") else input_size
        shape = (1, quantity) if self.hopfield.batch_first else (quantity, 1)
        self.pooling_weights = nn.Parameter(torch.empty(*shape, width), requires_grad=trainable)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Reset the Hopfield layer and draw the query from N(0, 0.02)."""
        self.hopfield.reset_parameters()
        nn.init.normal_(self.pooling_weights, mean=0.0, std=0.02)

    def _inputs(self, input: Tensor | tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor, Tensor]:
        if isinstance(input, Tensor):
            stored = projection = self._sequence(input, "input", 0)
        elif isinstance(input, (tuple, list)) and len(input) == 2:
            stored, projection = (
                self._sequence(input[0], "input[0]", 0),
                self._sequence(input[1], "input[1]", 2),
            )
        else:
            raise TypeError(
                f"HopfieldPooling: input must be one tensor or a tuple (stored_pattern, pattern_projection), "
                f"got {type(input).__name__}"
            )
        batch = stored.shape[0 if self.hopfield.batch_first else 1]
        shape = (batch, self.quantity) if self.hopfield.batch_first else (self.quantity, batch)
        return stored, self.pooling_weights.expand(*shape, -1), projection

    def forward(
        self,
        input: Tensor | tuple[Tensor, Tensor],
        stored_pattern_padding_mask: Tensor | None = None,
        association_mask: Tensor | None = None,
    ) -> Tensor:
        """The pooled input, ``(B, quantity * output_size)``."""
        inputs, masks = self._inputs(input), (stored_pattern_padding_mask, association_mask)
        out = self._checked(lambda: self.hopfield(inputs, *masks), input, masks, lambda o: o)
        return (out if self.hopfield.batch_first else out.transpose(0, 1)).flatten(start_dim=1)
