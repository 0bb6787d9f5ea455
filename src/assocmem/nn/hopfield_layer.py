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

    ``group``: a ``torch.distributed`` process group over which the ``quantity`` stored patterns are spread, each
    rank its block (:mod:`assocmem.nn.sharded_lookup`, docs/bank-sharded.md); call the layer on every rank at
    once, each with its own batch (one plain association; :meth:`retrieve` and :meth:`energy` are refused).
    """

    def __init__(
        self,
        input_size: int,
        *,
        quantity: int = 1,
        trainable: bool = True,
        lookup_weights_as_separated: bool = False,
        lookup_targets_as_trainable: bool = True,
        group: object = None,
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
        self.group, self.rows = group, (0, quantity)
        if group is not None:
            from assocmem.nn.sharded_lookup import check_options

            self.rows = check_options(self, group)
        mine = self.rows[1] - self.rows[0]
        shape = (1, mine) if self.hopfield.batch_first else (mine, 1)
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
        if self.group is not None:
            raise ValueError("HopfieldLayer: a sharded lookup (group=...) is called through forward only")
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
        if self.group is not None:
            from assocmem.nn.sharded_lookup import sharded_forward

            if stored_pattern_padding_mask is not None or association_mask is not None:
                raise ValueError("HopfieldLayer: a sharded lookup (group=...) takes no masks")
            return sharded_forward(self, self._sequence(input, "input", 1))
        inputs, masks = self._inputs(input), (stored_pattern_padding_mask, association_mask)
        return self._checked(lambda: self.hopfield(inputs, *masks), input, masks, lambda out: out)
