"""Data sets: the IDX format (MNIST, Fashion-MNIST) with checksums, downloads and user-named folders."""

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
    "load",
    "locate",
    "parse_idx",
    "read_idx",
    "sha256",
    "verify",
]
