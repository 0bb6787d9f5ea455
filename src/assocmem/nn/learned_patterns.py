"""What ``HopfieldLayer`` and ``HopfieldPooling`` share: a :class:`Hopfield` fed with learned patterns."""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from assocmem.nn.functional import Association


class LearnedPatterns(nn.Module):
    """A module holding ``self.hopfield`` and ``_inputs(input) -> (stored, state, projection)``; it forwards
    the one-call retrieval, the energy and the association matrix to the Hopfield layer."""

    hopfield: Any

    def _inputs(self, input: Any) -> tuple[Tensor, Tensor, Tensor]:
        raise NotImplementedError

    def retrieve(
        self,
        input: Any,
        stored_pattern_padding_mask: Tensor | None = None,
        association_mask: Tensor | None = None,
    ) -> Association:
        """:meth:`Hopfield.retrieve` with the learned patterns: output, association, states and energies."""
        return self.hopfield.retrieve(self._inputs(input), stored_pattern_padding_mask, association_mask)

    def energy(
        self,
        input: Any,
        stored_pattern_padding_mask: Tensor | None = None,
        association_mask: Tensor | None = None,
    ) -> Tensor:
        """Model B's energy of the state patterns in the Hopfield space, ``(B, H, L)`` (docs/reference.md §2)."""
        return self.hopfield.energy(self._inputs(input), stored_pattern_padding_mask, association_mask)

    def association_matrix(
        self,
        input: Any,
        stored_pattern_padding_mask: Tensor | None = None,
        association_mask: Tensor | None = None,
    ) -> Tensor:
        """The association matrix ``softmax(beta Q K^T + M)``, ``(B, H, L, S)``."""
        return self.hopfield.association_matrix(
            self._inputs(input), stored_pattern_padding_mask, association_mask
        )

    def get_association_matrix(
        self,
        input: Any,
        stored_pattern_padding_mask: Tensor | None = None,
        association_mask: Tensor | None = None,
    ) -> Tensor:
        """hflayers' name for :meth:`association_matrix`."""
        return self.association_matrix(input, stored_pattern_padding_mask, association_mask)
