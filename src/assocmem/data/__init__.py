"""Data sets: the IDX format (MNIST, Fashion-MNIST) with checksums, downloads and user-named folders; generated
sprites and corrupted cues for the demo."""

from assocmem.data.corruption import flip_bits, mask_rows
from assocmem.data.datasets import (
    ENV_VAR,
    FILES,
    SOURCES,
    DataSet,
    Source,
    Split,
    default_cache_dir,
    download,
    load,
    locate,
)
from assocmem.data.idx import DataError, parse_idx, read_idx, sha256, verify
from assocmem.data.sprites import sprites

__all__ = [
    "ENV_VAR",
    "FILES",
    "SOURCES",
    "DataError",
    "DataSet",
    "Source",
    "Split",
    "default_cache_dir",
    "download",
    "flip_bits",
    "load",
    "locate",
    "mask_rows",
    "parse_idx",
    "read_idx",
    "sha256",
    "sprites",
    "verify",
]
