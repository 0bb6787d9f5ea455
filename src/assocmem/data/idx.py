"""The IDX file format (LeCun's format of MNIST and Fashion-MNIST), read into torch tensors.

An IDX file is a 4-byte magic number (two zero bytes, a type code, the number of dimensions), one big-endian
32-bit size per dimension, then the values in C order, big-endian. Files may be gzip-compressed (``.gz``).
"""

from __future__ import annotations

import gzip
import hashlib
import math
import os
import struct
import sys
import zlib
from pathlib import Path

import torch

# type code -> torch dtype (values are stored big-endian)
_TYPES = {
    0x08: torch.uint8,
    0x09: torch.int8,
    0x0B: torch.int16,
    0x0C: torch.int32,
    0x0D: torch.float32,
    0x0E: torch.float64,
}


class DataError(ValueError):
    """A data file is missing, corrupt, truncated, or does not match its checksum."""


def sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 digest of a file's bytes (read in 1 MiB blocks)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def verify(path: str | os.PathLike, expected: str) -> None:
    """Raise :class:`DataError` unless the SHA-256 of ``path`` equals ``expected`` (hex)."""
    got = sha256(path)
    if got != expected.lower():
        raise DataError(
            f"checksum mismatch for {path}: SHA-256 is {got}, expected {expected.lower()}; "
            "the file is corrupt or not the published one (delete it and download or copy it again)"
        )


def parse_idx(raw: bytes, name: str = "<bytes>") -> torch.Tensor:
    """Decode the bytes of an (uncompressed) IDX file into a tensor of its shape and dtype."""
    if len(raw) < 4:
        raise DataError(f"{name}: truncated IDX file ({len(raw)} bytes, no header)")
    zero0, zero1, code, ndim = raw[0], raw[1], raw[2], raw[3]
    if zero0 != 0 or zero1 != 0 or code not in _TYPES:
        raise DataError(
            f"{name}: not an IDX file (magic bytes {raw[:4].hex()}, expected 00 00 <type in "
            f"{sorted(hex(c) for c in _TYPES)}> <ndim>)"
        )
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{name}: truncated IDX file (header of {ndim} dimensions needs {header} bytes)")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = _TYPES[code]
    itemsize = torch.empty((), dtype=dtype).element_size()
    count = math.prod(dims)
    expected = header + count * itemsize
    if len(raw) < expected:
        raise DataError(f"{name}: truncated IDX file: {len(raw)} bytes, shape {dims} needs {expected}")
    if len(raw) > expected:
        raise DataError(
            f"{name}: corrupt IDX file: {len(raw) - expected} bytes after the data of shape {dims}"
        )
    data = (
        torch.frombuffer(bytearray(raw[header:]), dtype=torch.uint8)
        if count
        else torch.empty(0, dtype=torch.uint8)
    )
    if itemsize > 1 and sys.byteorder == "little":
        data = data.view(-1, itemsize).flip(1).contiguous()
    return data.view(dtype).reshape(dims)


def read_idx(path: str | os.PathLike, sha256_hex: str | None = None) -> torch.Tensor:
    """Read an IDX file (gzip-compressed or not) into a tensor; verify its SHA-256 first when one is given.

    Raises :class:`DataError` naming the file when it is missing, fails the checksum, is not gzip/IDX, or is
    truncated.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    if sha256_hex is not None:
        verify(path, sha256_hex)
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as err:
            raise DataError(f"{path}: corrupt or truncated gzip file ({err})") from err
    return parse_idx(raw, str(path))
