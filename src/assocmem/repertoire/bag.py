"""One immune repertoire: a bag of amino-acid sequences with their clonal abundances and the bag's label."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from assocmem.repertoire.alphabet import check_codes, decode


@dataclass(frozen=True)
class Repertoire:
    """A bag of ``n`` CDR3 sequences (one immune repertoire) and its label.

    Attributes:
        name: the repertoire's id (its file name without suffix in a data set folder).
        codes: uint8 ``(n, L)`` amino-acid codes, padded with ``PAD`` (:mod:`assocmem.repertoire.alphabet`).
        lengths: int64 ``(n,)`` letters of each sequence, ``>= 1``.
        counts: int64 ``(n,)`` clonal abundance of each sequence, ``>= 1`` (1 where the source has none).
        label: 0 or 1 for a labelled bag, None for an unlabelled one.
        witness: bool ``(n,)``, True where a simulated motif was implanted; None for real data.
    """

    name: str
    codes: Tensor
    lengths: Tensor
    counts: Tensor
    label: int | None
    witness: Tensor | None = None

    def __post_init__(self) -> None:
        who = "Repertoire"
        if not isinstance(self.name, str) or not self.name:
            raise TypeError(f"{who}: name must be a non-empty string, got {self.name!r}")
        check_codes(self.codes, self.lengths, f"{who} {self.name!r}")
        n = self.codes.shape[0]
        if n == 0:
            raise ValueError(f"{who} {self.name!r}: codes is empty; a repertoire holds at least one sequence")
        if not isinstance(self.counts, Tensor) or self.counts.dtype != torch.int64:
            raise TypeError(f"{who} {self.name!r}: counts must be an int64 tensor, got {_kind(self.counts)}")
        if self.counts.shape != (n,):
            raise ValueError(f"{who} {self.name!r}: counts must be ({n},), got {tuple(self.counts.shape)}")
        if self.counts.is_meta or int(self.counts.min()) < 1:
            raise ValueError(f"{who} {self.name!r}: counts must be integers >= 1 (clonal abundance)")
        if self.label is not None and (isinstance(self.label, bool) or self.label not in (0, 1)):
            raise ValueError(f"{who} {self.name!r}: label must be 0, 1 or None, got {self.label!r}")
        if self.witness is not None:
            if not isinstance(self.witness, Tensor) or self.witness.dtype != torch.bool:
                raise TypeError(
                    f"{who} {self.name!r}: witness must be a bool tensor, got {_kind(self.witness)}"
                )
            if self.witness.shape != (n,):
                raise ValueError(
                    f"{who} {self.name!r}: witness must be ({n},), got {tuple(self.witness.shape)}"
                )

    @property
    def size(self) -> int:
        """The number of sequences in the bag."""
        return self.codes.shape[0]

    def sequences(self) -> list[str]:
        """The bag's sequences as strings."""
        return decode(self.codes, self.lengths)


def _kind(value: object) -> str:
    return f"{value.dtype} tensor" if isinstance(value, Tensor) else type(value).__name__
