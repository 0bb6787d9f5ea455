"""The amino-acid alphabet of CDR3 sequences and their encoding as small integer codes.

A sequence of ``m`` letters becomes ``m`` codes in ``0..19`` (code ``i`` is ``AMINO_ACIDS[i]``); a batch of sequences
is one ``uint8`` matrix ``(n, L)`` with ``L`` the longest sequence and :data:`PAD` after each sequence's end, beside
its ``int64`` lengths. One byte a letter keeps a bag of 10^5 sequences of 20 letters at 2 MB.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

#: The 20 standard amino acids in one-letter code, alphabetical; code ``i`` is ``AMINO_ACIDS[i]``.
AMINO_ACIDS = "ACDEFGHIKLMNPQRSTVWY"
#: The padding code after a sequence's end (one past the last amino acid).
PAD = 20
#: Marks a byte that is not an amino acid in :data:`CODE_OF_BYTE`.
INVALID = 255

#: ``CODE_OF_BYTE[b]``: the code of the ASCII letter ``b``, or :data:`INVALID`.
CODE_OF_BYTE = np.full(256, INVALID, dtype=np.uint8)
CODE_OF_BYTE[np.frombuffer(AMINO_ACIDS.encode("ascii"), dtype=np.uint8)] = np.arange(20, dtype=np.uint8)
_LETTERS = np.frombuffer(AMINO_ACIDS.encode("ascii") + b"-", dtype=np.uint8)  # code -> byte ("-" for PAD)


def codes_of_bytes(flat: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, int | None]:
    """The codes of ``flat`` (the bytes of sequences laid end to end, ``lengths`` of them each) as a padded
    ``(n, L)`` uint8 array, and the flat index of the first byte that is not an amino acid (None when all are)."""
    codes = CODE_OF_BYTE[flat]
    bad = np.flatnonzero(codes == INVALID)
    n = len(lengths)
    width = int(lengths.max()) if n else 0
    out = np.full((n, width), PAD, dtype=np.uint8)
    out[np.arange(width)[None, :] < lengths[:, None]] = codes  # row-major order is the concatenation order
    return out, (int(bad[0]) if len(bad) else None)


def locate(flat_index: int, lengths: np.ndarray) -> tuple[int, int]:
    """(sequence, position) of the byte at ``flat_index`` in sequences of ``lengths`` laid end to end."""
    ends = np.cumsum(lengths)
    i = int(np.searchsorted(ends, flat_index, side="right"))
    return i, flat_index - int(ends[i] - lengths[i])


def encode(sequences: Sequence[str]) -> tuple[Tensor, Tensor]:
    """Encode amino-acid sequences: ``codes`` uint8 ``(n, L)`` padded with :data:`PAD`, ``lengths`` int64 ``(n,)``.

    Letters must be upper-case members of :data:`AMINO_ACIDS`; an empty sequence or any other character is a
    ``ValueError`` naming the sequence's index, the position and the character.

    >>> codes, lengths = encode(["CASS", "CAF"])
    >>> codes.tolist(), lengths.tolist()
    ([[1, 0, 15, 15], [1, 0, 4, 20]], [4, 3])
    """
    if isinstance(sequences, str) or not isinstance(sequences, Sequence):
        raise TypeError(f"encode: sequences must be a list of strings, got {type(sequences).__name__}")
    for i, s in enumerate(sequences):
        if not isinstance(s, str):
            raise TypeError(f"encode: sequences[{i}] must be a string, got {type(s).__name__}")
        if not s:
            raise ValueError(f"encode: sequences[{i}] is empty; every sequence needs at least one amino acid")
    lengths = np.fromiter((len(s) for s in sequences), dtype=np.int64, count=len(sequences))
    joined = "".join(sequences)
    try:
        flat = np.frombuffer(joined.encode("ascii"), dtype=np.uint8)
    except UnicodeEncodeError as err:
        i, pos = locate(err.start, lengths)
        raise ValueError(
            f"encode: sequences[{i}] has {joined[err.start]!r} at position {pos}, not one of {AMINO_ACIDS}"
        ) from None
    codes, bad = codes_of_bytes(flat, lengths)
    if bad is not None:
        i, pos = locate(bad, lengths)
        raise ValueError(
            f"encode: sequences[{i}] has {joined[bad]!r} at position {pos}, not one of {AMINO_ACIDS}"
        )
    return torch.from_numpy(codes), torch.from_numpy(lengths)


def check_codes(codes: object, lengths: object, who: str) -> tuple[Tensor, Tensor]:
    """``codes`` (uint8 ``(n, L)``) and ``lengths`` (int64 ``(n,)``, each in ``[1, L]``), or a clear error."""
    if not isinstance(codes, Tensor):
        raise TypeError(f"{who}: codes must be a torch.Tensor, got {type(codes).__name__}")
    if not isinstance(lengths, Tensor):
        raise TypeError(f"{who}: lengths must be a torch.Tensor, got {type(lengths).__name__}")
    if codes.dtype != torch.uint8:
        raise TypeError(f"{who}: codes must be torch.uint8 (amino-acid codes, PAD={PAD}), got {codes.dtype}")
    if lengths.dtype != torch.int64:
        raise TypeError(f"{who}: lengths must be torch.int64, got {lengths.dtype}")
    if codes.dim() != 2:
        raise ValueError(f"{who}: codes must be (sequences, positions), got shape {tuple(codes.shape)}")
    if lengths.shape != codes.shape[:1]:
        raise ValueError(
            f"{who}: lengths must be ({codes.shape[0]},), one per sequence of codes, got {tuple(lengths.shape)}"
        )
    for name, t in (("codes", codes), ("lengths", lengths)):
        if t.is_meta:
            raise ValueError(f"{who}: {name} is on the meta device (a shape without values)")
    if lengths.numel():
        if int(lengths.min()) < 1 or int(lengths.max()) > codes.shape[1]:
            raise ValueError(
                f"{who}: lengths must lie in [1, {codes.shape[1]}] (codes' width), got "
                f"[{int(lengths.min())}, {int(lengths.max())}]"
            )
        top = int(codes.numpy().max()) if codes.device.type == "cpu" else int(codes.max())  # torch's is slow
        if top > PAD:
            raise ValueError(f"{who}: codes must lie in [0, {PAD}] ({PAD} is padding), got {top}")
    return codes, lengths


def decode(codes: Tensor, lengths: Tensor) -> list[str]:
    """The sequences of ``codes`` and ``lengths`` (the inverse of :func:`encode`).

    >>> decode(*encode(["CASSF", "CW"]))
    ['CASSF', 'CW']
    """
    codes, lengths = check_codes(codes, lengths, "decode")
    c = codes.cpu().numpy()
    n = lengths.cpu().numpy()
    mask = np.arange(c.shape[1])[None, :] < n[:, None]
    text = _LETTERS[c[mask]].tobytes().decode("ascii")
    ends = np.cumsum(n)
    return [text[e - k : e] for e, k in zip(ends.tolist(), n.tolist(), strict=True)]
