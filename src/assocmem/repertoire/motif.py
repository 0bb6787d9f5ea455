"""A sequence motif: a short run of amino acids with optional gaps, the signal a positive repertoire carries.

Written as a pattern such as ``"SA/S"``: letters are fixed amino acids and each ``/`` is a gap of one position that
any amino acid fills. A sequence contains the motif when the letters occur at their relative offsets somewhere in it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from assocmem.repertoire.alphabet import AMINO_ACIDS, check_codes

GAP = "/"


@dataclass(frozen=True)
class Motif:
    """A motif: ``pattern`` of amino-acid letters and ``/`` gaps, e.g. ``Motif.parse("SA/S")``.

    ``offsets`` are the positions of the letters within the motif's ``span`` (letters and gaps together).

    >>> m = Motif.parse("SA/S")
    >>> m.span, m.letters, m.offsets
    (4, 'SAS', (0, 1, 3))
    >>> m.matches("CASSAGSF"), m.matches("CASSASF")
    (True, False)
    """

    pattern: str

    def __post_init__(self) -> None:
        p = self.pattern
        if not isinstance(p, str):
            raise TypeError(f"Motif: pattern must be a string such as 'SA/S', got {type(p).__name__}")
        if not p or p[0] == GAP or p[-1] == GAP:
            raise ValueError(f"Motif: pattern must start and end with an amino acid, got {p!r}")
        for i, ch in enumerate(p):
            if ch != GAP and ch not in AMINO_ACIDS:
                raise ValueError(
                    f"Motif: pattern {p!r} has {ch!r} at position {i}; letters are {AMINO_ACIDS}, '/' a gap"
                )

    @classmethod
    def parse(cls, pattern: str) -> Motif:
        """The motif of ``pattern`` (letters of :data:`AMINO_ACIDS`, ``/`` for a one-position gap)."""
        return cls(pattern)

    @property
    def span(self) -> int:
        """Positions the motif covers, gaps included."""
        return len(self.pattern)

    @property
    def letters(self) -> str:
        """The fixed amino acids, in order."""
        return self.pattern.replace(GAP, "")

    @property
    def offsets(self) -> tuple[int, ...]:
        """Offset of each fixed letter from the motif's start."""
        return tuple(i for i, ch in enumerate(self.pattern) if ch != GAP)

    @property
    def codes(self) -> Tensor:
        """The letters' amino-acid codes (int64)."""
        return torch.tensor([AMINO_ACIDS.index(ch) for ch in self.letters], dtype=torch.int64)

    def matches(self, sequence: str) -> bool:
        """Whether ``sequence`` contains the motif (gaps honoured, letters exact)."""
        if not isinstance(sequence, str):
            raise TypeError(f"Motif.matches: sequence must be a string, got {type(sequence).__name__}")
        offsets, letters = self.offsets, self.letters
        return any(
            all(sequence[s + o] == ch for o, ch in zip(offsets, letters, strict=True))
            for s in range(len(sequence) - self.span + 1)
        )

    def occurs(self, codes: Tensor, lengths: Tensor) -> Tensor:
        """Whether each encoded sequence contains the motif: bool ``(n,)``, for a whole bag at once.

        Padding never equals a letter, so a match cannot run past a sequence's end.
        """
        codes, lengths = check_codes(codes, lengths, "Motif.occurs")
        n, width = codes.shape
        found = torch.zeros(n, dtype=torch.bool, device=codes.device)
        for start in range(width - self.span + 1):
            hit = torch.ones(n, dtype=torch.bool, device=codes.device)
            for o, c in zip(self.offsets, self.codes.tolist(), strict=True):
                hit &= codes[:, start + o] == c
            found |= hit
        return found

    def __str__(self) -> str:
        return self.pattern
