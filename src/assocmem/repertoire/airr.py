"""Reading one repertoire file: an AIRR rearrangement TSV, or DeepRC's own column names, into amino-acid codes.

The file is tab-separated with a header line. The sequence column is the first found of :data:`SEQUENCE_COLUMNS`
(AIRR's ``junction_aa`` or ``cdr3_aa``; DeepRC's ``amino_acid``; immunoSEQ's ``aminoAcid``), the abundance column
the first found of :data:`COUNT_COLUMNS` (AIRR's ``duplicate_count``; DeepRC's ``templates``; immunoSEQ's
``count (templates/reads)``); without one every count is 1. Other columns are ignored.

The file is streamed: it is read in chunks of lines, and each chunk becomes codes before the next is read, so the
text of a bag is never in memory whole beside its codes. Every malformed input is a :class:`FileFormatError` naming
the file, the line (the header is line 1) and the column: a missing column, a line with the wrong number of fields,
an empty sequence, a letter that is not an amino acid, a count that is not an integer >= 1, an empty bag, a file
that is not UTF-8 text (a UTF-16 byte-order mark, or bytes that do not decode). A UTF-8 byte-order mark is skipped.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from assocmem.repertoire.alphabet import AMINO_ACIDS, PAD, codes_of_bytes, locate

#: Column names of the amino-acid sequence, in order of preference.
SEQUENCE_COLUMNS = ("junction_aa", "cdr3_aa", "amino_acid", "aminoAcid")
#: Column names of the clonal abundance, in order of preference.
COUNT_COLUMNS = ("duplicate_count", "templates", "count (templates/reads)", "count")
#: Bytes read per chunk of lines.
CHUNK_BYTES = 1 << 20

_BOMS = {b"\xff\xfe": "UTF-16 (little-endian)", b"\xfe\xff": "UTF-16 (big-endian)"}


class FileFormatError(ValueError):
    """A malformed repertoire or metadata file; the message names the file, the line and the column."""


def where(path: Path, line: int, column: str | None = None) -> str:
    return f"{path}, line {line}" + (f", column {column}" if column else "")


def check_text_start(path: Path, head: bytes) -> int:
    """Bytes to skip at the start of a file (a UTF-8 byte-order mark), or an error for a UTF-16 or UTF-32 file."""
    if head.startswith(b"\xef\xbb\xbf"):
        return 3
    for bom, name in _BOMS.items():
        if head.startswith(bom):
            raise FileFormatError(f"{where(path, 1)}: the file is {name} text; save it as UTF-8")
    return 0


def decode_line(path: Path, line_no: int, raw: bytes) -> str:
    """A line of text; a line that is not UTF-8 is an error naming the byte."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise FileFormatError(
            f"{where(path, line_no)}: not UTF-8 text (byte {raw[err.start]:#04x} at character {err.start + 1}); "
            "save the file as UTF-8"
        ) from None


def split_header(path: Path, raw: bytes) -> list[str]:
    if not raw.strip():
        raise FileFormatError(f"{where(path, 1)}: the file is empty; expected a tab-separated header line")
    if b"\x00" in raw:
        raise FileFormatError(
            f"{where(path, 1)}: the header holds NUL bytes (UTF-16 text without a byte-order mark?); save it as UTF-8"
        )
    return decode_line(path, 1, raw.rstrip(b"\r\n")).split("\t")


def find_column(
    path: Path, header: list[str], names: tuple[str, ...], what: str, required: bool
) -> int | None:
    for name in names:
        if name in header:
            return header.index(name)
    if not required:
        return None
    hint = " (the file looks comma-separated; repertoire files are tab-separated)" if "," in header[0] else ""
    raise FileFormatError(
        f"{where(path, 1)}: no {what} column: expected one of {', '.join(names)}, found {header}{hint}"
    )


@dataclass
class Bag:
    """The contents of one repertoire file and the SHA-256 of its bytes."""

    codes: Tensor
    lengths: Tensor
    counts: Tensor
    sha256: str


def read_repertoire_file(path: str | os.PathLike, chunk_bytes: int = CHUNK_BYTES) -> Bag:
    """Read one repertoire file (module docstring) into codes ``(n, L)``, lengths and counts."""
    path = Path(path)
    digest = hashlib.sha256()
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    with open(path, "rb") as f:
        raw = f.readline()
        digest.update(raw)
        raw = raw[check_text_start(path, raw) :]
        header = split_header(path, raw)
        si = find_column(path, header, SEQUENCE_COLUMNS, "amino-acid sequence", True)
        ci = find_column(path, header, COUNT_COLUMNS, "count", False)
        line_no = 1
        while lines := f.readlines(chunk_bytes):
            for line in lines:
                digest.update(line)
            parts.append(_chunk(path, header, si, ci, lines, line_no + 1))
            line_no += len(lines)
    if not parts:
        raise FileFormatError(f"{where(path, 2)}: the repertoire holds no sequences (only a header)")
    width = max(p[0].shape[1] for p in parts)
    total = sum(len(p[1]) for p in parts)
    codes = np.full((total, width), PAD, dtype=np.uint8)
    start = 0
    for c, _, _ in parts:
        codes[start : start + len(c), : c.shape[1]] = c
        start += len(c)
    lengths = np.concatenate([p[1] for p in parts])
    counts = np.concatenate([p[2] for p in parts])
    return Bag(
        torch.from_numpy(codes), torch.from_numpy(lengths), torch.from_numpy(counts), digest.hexdigest()
    )


def _chunk(path: Path, header: list[str], si: int, ci: int | None, lines: list[bytes], first: int) -> tuple:
    """Codes, lengths and counts of ``lines`` (the first is line ``first`` of the file)."""
    ncols = len(header)
    seqs: list[bytes] = []
    counts: list[bytes] = []
    for k, line in enumerate(lines):
        fields = line.rstrip(b"\n").rstrip(b"\r").split(b"\t")
        if len(fields) != ncols:
            what = "an empty line" if fields == [b""] else f"{len(fields)} tab-separated fields"
            raise FileFormatError(f"{where(path, first + k)}: {what}; the header names {ncols} columns")
        if not fields[si]:
            raise FileFormatError(f"{where(path, first + k, header[si])}: empty sequence")
        seqs.append(fields[si])
        if ci is not None:
            counts.append(fields[ci])
    lengths = np.fromiter(map(len, seqs), dtype=np.int64, count=len(seqs))
    codes, bad = codes_of_bytes(np.frombuffer(b"".join(seqs), dtype=np.uint8), lengths)
    if bad is not None:
        i, pos = locate(bad, lengths)
        field = seqs[i]
        try:
            letter = repr(field.decode("utf-8")[pos])  # the letters before it are amino acids: one byte each
        except UnicodeDecodeError:
            letter = f"byte {field[pos]:#04x}, not UTF-8 text"
        raise FileFormatError(
            f"{where(path, first + i, header[si])}: {letter} at letter {pos + 1} of {field[:40]!r} is not "
            f"one of the 20 amino acids {AMINO_ACIDS}"
        )
    if ci is None:
        return codes, lengths, np.ones(len(seqs), dtype=np.int64)
    values = np.array([_count(c) for c in counts], dtype=np.int64)
    bad_count = int(np.flatnonzero(values < 1)[0]) if (values < 1).any() else None
    if bad_count is not None:
        text = counts[bad_count].decode("utf-8", "replace")
        raise FileFormatError(
            f"{where(path, first + bad_count, header[ci])}: the count {text!r} is not an integer >= 1"
        )
    return codes, lengths, values


def _count(field: bytes) -> int:
    """The integer in a count field, or 0 when it holds none (or one beyond int64)."""
    try:
        value = int(field)
    except ValueError:
        return 0
    return value if 0 < value < 2**63 else 0
