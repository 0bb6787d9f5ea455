"""The background of a simulated repertoire: CDR3 junctions drawn from a position-dependent amino-acid distribution.

A junction (``junction_aa``: the CDR3 with its conserved first cysteine and last phenylalanine or tryptophan) of
``m`` letters is drawn in three steps, all vectorised over a bag:

1. its length ``m`` from :data:`LENGTHS`, a smooth, single-peaked spectrum over 8..22 letters with its mode at 14
   and 15 letters and nearly all mass in 10..20: the shape of human T-cell receptor beta junction length spectra
   (their CDR3 length distributions peak at 14-15 amino acids in healthy repertoires), written here as our own
   round numbers, not fitted to any data set;
2. its letters: position 0 is ``C``; the last position ``F`` (92%) or ``W`` (8%); the three positions after the
   ``C`` follow :data:`START` (the germline-encoded ``CASS``-like start of beta chains), the three before the last
   letter follow :data:`END` (the ``...QYF`` / ``...EQYF``-like J-segment end), and the middle follows
   :data:`MIDDLE`, a composition rich in glycine and serine, as junctional diversity makes it;
3. its clonal abundance (``duplicate_count``) from a discrete power law, ``P(count >= c) = c**-alpha`` (a few large
   clones and a long tail of singletons), capped at :data:`MAX_COUNT`.

The numbers are illustrative: they give realistic-looking sequences and, more importantly, a non-uniform
background in which a motif's letters occur by chance at a rate :func:`chance_rate` can estimate.
"""

from __future__ import annotations

import numpy as np

from assocmem.repertoire.alphabet import AMINO_ACIDS, PAD

#: Probability of each junction length (letters), before normalisation.
LENGTHS: dict[int, float] = {
    8: 0.003, 9: 0.007, 10: 0.02, 11: 0.05, 12: 0.10, 13: 0.15, 14: 0.19, 15: 0.18,
    16: 0.13, 17: 0.08, 18: 0.045, 19: 0.025, 20: 0.012, 21: 0.006, 22: 0.003,
}  # fmt: skip
#: Amino-acid composition of the junction's middle (before normalisation).
MIDDLE: dict[str, float] = {
    "G": 0.14, "S": 0.11, "A": 0.07, "T": 0.07, "D": 0.06, "E": 0.06, "R": 0.06, "L": 0.06, "N": 0.05,
    "Q": 0.05, "P": 0.05, "Y": 0.05, "V": 0.03, "K": 0.03, "F": 0.02, "I": 0.02, "H": 0.02, "W": 0.02,
    "M": 0.01, "C": 0.005,
}  # fmt: skip
#: The three positions after the first ``C``: the named letters' probabilities; the rest of the mass follows MIDDLE.
START: tuple[dict[str, float], ...] = (
    {"A": 0.80, "S": 0.10, "V": 0.05},
    {"S": 0.75, "W": 0.05, "R": 0.05, "T": 0.05},
    {"S": 0.45, "L": 0.10, "R": 0.10, "G": 0.10, "P": 0.05, "T": 0.05},
)
#: The three positions before the last letter, from the fourth-last to the second-last.
END: tuple[dict[str, float], ...] = (
    {"E": 0.35, "T": 0.15, "P": 0.10, "Y": 0.10},
    {"Q": 0.35, "E": 0.10, "T": 0.10, "A": 0.10, "N": 0.05},
    {"Y": 0.55, "F": 0.15, "L": 0.05, "V": 0.05, "H": 0.05},
)
#: The last letter.
LAST: dict[str, float] = {"F": 0.92, "W": 0.08}
#: The largest clonal abundance drawn.
MAX_COUNT = 10**6


def _profile(named: dict[str, float]) -> np.ndarray:
    """A distribution over the 20 amino acids: ``named``'s probabilities, the rest of the mass as MIDDLE."""
    p = np.array([MIDDLE[a] for a in AMINO_ACIDS], dtype=np.float64)
    p /= p.sum()
    rest = np.array([a not in named for a in AMINO_ACIDS])
    out = np.where(rest, p, 0.0)
    out *= (1.0 - sum(named.values())) / out.sum()
    for a, w in named.items():
        out[AMINO_ACIDS.index(a)] = w
    return out / out.sum()


#: Uniform draws are 16-bit integers; a distribution is a table of 2**16 outcomes (probabilities to 1.5e-5).
RESOLUTION = 1 << 16


def _table(p: np.ndarray, values: np.ndarray | None = None) -> np.ndarray:
    """The outcome of every 16-bit draw: ``values[i]`` (default ``i``) for a share ``p[i]`` of the draws."""
    edges = np.round(np.cumsum(p) / p.sum() * RESOLUTION).astype(np.int64)
    which = np.searchsorted(edges, np.arange(RESOLUTION), side="right")
    return (np.arange(len(p)) if values is None else values)[which]


def _distribution(table: np.ndarray) -> np.ndarray:
    """The probabilities a table draws with (its realised numbers, not the rounded-off ones)."""
    return np.bincount(table, minlength=20)[:20] / RESOLUTION


_LENGTH_VALUES = np.array(sorted(LENGTHS), dtype=np.int64)
_LENGTH_TABLE = _table(np.array([LENGTHS[m] for m in sorted(LENGTHS)]), _LENGTH_VALUES)
_MIDDLE_TABLE = _table(_profile({})).astype(np.uint8)
_START_TABLES = [_table(_profile(s)).astype(np.uint8) for s in START]
_END_TABLES = [_table(_profile(e)).astype(np.uint8) for e in END]
_LAST_TABLE = _table(_profile(LAST)).astype(np.uint8)
#: The shortest and the longest junction drawn.
SHORTEST, LONGEST = int(_LENGTH_VALUES[0]), int(_LENGTH_VALUES[-1])


def position_probabilities(length: int) -> np.ndarray:
    """``(length, 20)``: the probability of each amino acid at each position of a junction of ``length``."""
    rows = [_distribution(_MIDDLE_TABLE)] * length
    rows[0] = np.eye(20)[AMINO_ACIDS.index("C")]
    for i, t in enumerate(_START_TABLES):
        rows[1 + i] = _distribution(t)
    for i, t in enumerate(_END_TABLES):
        rows[length - 4 + i] = _distribution(t)
    rows[-1] = _distribution(_LAST_TABLE)
    return np.stack(rows)


def length_probabilities() -> dict[int, float]:
    """The junction length distribution (as drawn)."""
    counts = np.bincount(_LENGTH_TABLE, minlength=LONGEST + 1)
    return {int(m): counts[m] / RESOLUTION for m in _LENGTH_VALUES}


def _draw(rng: np.random.Generator, shape: int | tuple[int, ...]) -> np.ndarray:
    return rng.integers(0, RESOLUTION, size=shape, dtype=np.uint16)


def sample_background(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``n`` junctions: codes uint8 ``(n, LONGEST)`` padded with PAD, and int64 lengths."""
    lengths = _LENGTH_TABLE[_draw(rng, n)]
    codes = _MIDDLE_TABLE[_draw(rng, (n, LONGEST))]
    rows = np.arange(n)
    codes[:, 0] = AMINO_ACIDS.index("C")
    for i, t in enumerate(_START_TABLES):
        codes[:, 1 + i] = t[_draw(rng, n)]
    for i, t in enumerate(_END_TABLES):
        codes[rows, lengths - 4 + i] = t[_draw(rng, n)]
    codes[rows, lengths - 1] = _LAST_TABLE[_draw(rng, n)]
    codes[np.arange(LONGEST)[None, :] >= lengths[:, None]] = PAD
    return codes, lengths


def sample_counts(n: int, rng: np.random.Generator, alpha: float) -> np.ndarray:
    """Clonal abundances: ``floor(u**(-1/alpha))`` for uniform ``u``, so ``P(count >= c) = c**-alpha``."""
    u = 1.0 - rng.random(n)  # in (0, 1]
    return np.minimum(np.floor(u ** (-1.0 / alpha)), MAX_COUNT).astype(np.int64)


def chance_rate(letters_at: list[tuple[int, int]], span: int) -> float:
    """Expected chance occurrences per background junction of a motif whose letter codes sit at (offset, code),
    over every start and every length (the sum of the match probabilities of each start)."""
    total = 0.0
    for m, pm in length_probabilities().items():
        probs = position_probabilities(m)
        for s in range(m - span + 1):
            total += pm * float(np.prod([probs[s + o, c] for o, c in letters_at]))
    return total
