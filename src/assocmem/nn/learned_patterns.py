"""What ``HopfieldLayer`` and ``HopfieldPooling`` share: a :class:`Hopfield` fed with learned patterns."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from torch import Tensor, nn

from assocmem.nn.arguments import check_sequence, first_tensor, run_checked
from assocmem.nn.functional import Association

T = TypeVar("T")


class LearnedPatterns(nn.Module):
    """A module holding ``self.hopfield`` and ``_inputs(input) -> (stored, state, projection)``; it forwards
    the one-call retrieval, the energy and the association matrix to the Hopfield layer. Every call checks the
    caller's ``input`` under that name and, once at the end, the finiteness of the result (docs/bad-input.md)."""

    hopfield: Any

    def _inputs(self, input: Any) -> tuple[Tensor, Tensor, Tensor]:
        raise NotImplementedError

    def _sequence(self, value: object, name: str, role: int) -> Tensor:
        """The caller's tensor ``name`` in the Hopfield layer's input ``role`` (0 stored, 1 state, 2 projection)."""
        length = (1 if self.hopfield.batch_first else 0) if role == 0 else None
        width = self.hopfield._widths()[role]
        return check_sequence(value, name, type(self).__name__, width, first_tensor(self), length)

    def _checked(
        self,
        call: Callable[[], T],
        input: Any,
        masks: tuple[Tensor | None, Tensor | None],
        result: Callable[[T], Tensor],
    ) -> T:
        given = (
            [("input", input)]
            if isinstance(input, Tensor)
            else [(f"input[{i}]", t) for i, t in enumerate(input)]
        )
        named = zip(("stored_pattern_padding_mask", "association_mask"), masks, strict=True)
        suspects = [*given, *named, ("scaling", self.hopfield.scaling), ("layer's parameters", self)]
        return run_checked(type(self).__name__, suspects, call, result)

    def retrieve(
        self,
        input: Any,
        stored_pattern_padding_mask: Tensor | None = None,
        association_mask: Tensor | None = None,
    ) -> Association:
        """:meth:`Hopfield.retrieve` with the learned patterns: output, association, states and energies."""
        inputs, masks = self._inputs(input), (stored_pattern_padding_mask, association_mask)
        return self._checked(lambda: self.hopfield.retrieve(inputs, *masks), input, masks, lambda r: r.output)

    def energy(
        self,
        input: Any,
        stored_pattern_padding_mask: Tensor | None = None,
        association_mask: Tensor | None = None,
    ) -> Tensor:
        """Model B's energy of the state patterns in the Hopfield space, ``(B, H, L)`` (docs/reference.md §2)."""
        inputs, masks = self._inputs(input), (stored_pattern_padding_mask, association_mask)
        return self._checked(lambda: self.hopfield.energy(inputs, *masks), input, masks, lambda e: e)

    def association_matrix(
        self,
        input: Any,
        stored_pattern_padding_mask: Tensor | None = None,
        association_mask: Tensor | None = None,
    ) -> Tensor:
        """The association matrix ``softmax(beta Q K^T + M)``, ``(B, H, L, S)``."""
        inputs, masks = self._inputs(input), (stored_pattern_padding_mask, association_mask)
        return self._checked(
            lambda: self.hopfield.association_matrix(inputs, *masks), input, masks, lambda a: a
        )

    def get_association_matrix(
        self,
        input: Any,
        stored_pattern_padding_mask: Tensor | None = None,
        association_mask: Tensor | None = None,
    ) -> Tensor:
        """hflayers' name for :meth:`association_matrix`."""
        return self.association_matrix(input, stored_pattern_padding_mask, association_mask)
