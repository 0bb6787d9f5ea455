"""Named IDX data sets (MNIST, Fashion-MNIST): where they come from, their checksums, and how they are found.

``load(name)`` looks in this order:
1. ``data_dir`` (``--data-dir`` on the command line) when given: a folder holding the four IDX ``.gz`` files;
2. otherwise the cache folder ``cache_dir`` / ``$ASSOCMEM_DATA`` / the platform default (:func:`default_cache_dir`),
   downloading the missing files there when ``download`` is true.
Every file is checked against its published SHA-256 before it is read. A download goes to a temporary file in the
cache folder and is renamed into place only after its checksum matches, so a failed download leaves nothing behind.
"""

from __future__ import annotations

import os
import sys
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from assocmem.data.idx import DataError, read_idx, sha256
from assocmem.files import atomic_path

ENV_VAR = "ASSOCMEM_DATA"
FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)


@dataclass(frozen=True)
class Source:
    """A data set in the IDX format: its file names, their SHA-256 digests and the mirrors that serve them."""

    name: str
    sha256: dict[str, str]
    mirrors: tuple[str, ...]
    files: tuple[str, ...] = field(default=FILES)


SOURCES = {
    "mnist": Source(
        "mnist",
        {
            "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
            "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
            "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
            "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
        },
        (
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "https://storage.googleapis.com/cvdf-datasets/mnist/",
        ),
    ),
    "fashion-mnist": Source(
        "fashion-mnist",
        {
            "train-images-idx3-ubyte.gz": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
            "train-labels-idx1-ubyte.gz": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
            "t10k-images-idx3-ubyte.gz": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
            "t10k-labels-idx1-ubyte.gz": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
        },
        ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
    ),
}


@dataclass
class Split:
    """Images (uint8, shape (count, rows, cols)) and labels (int64, shape (count,))."""

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return int(self.labels.shape[0])


@dataclass
class DataSet:
    """A data set's training and test splits, and the folder they were read from."""

    name: str
    train: Split
    test: Split
    folder: Path


def default_cache_dir() -> Path:
    """The cache root of the data sets: ``$ASSOCMEM_DATA`` if set, else :func:`user_cache_dir`."""
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR]).expanduser()
    return user_cache_dir()


def user_cache_dir() -> Path:
    """The platform's user cache folder + ``assocmem`` (data sets, compiled kernels).

    Linux and others: ``$XDG_CACHE_HOME/assocmem`` (``~/.cache/assocmem``); macOS: ``~/Library/Caches/assocmem``;
    Windows: ``%LOCALAPPDATA%\\assocmem\\Cache``.
    """
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local"))
        return base / "assocmem" / "Cache"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "assocmem"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "assocmem"


def read_checksums(folder: Path) -> dict[str, str]:
    """The ``SHA256SUMS`` file of a folder (``<hex>  <name>`` lines) as a dict; empty when there is none."""
    path = folder / "SHA256SUMS"
    if not path.is_file():
        return {}
    sums = {}
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) == 2:
            sums[parts[1].lstrip("*")] = parts[0].lower()
    return sums


Opener = Callable[[str], object]


def download(url: str, dest: Path, expected_sha256: str, opener: Opener | None = None) -> None:
    """Fetch ``url`` to ``dest`` atomically: a temporary file in dest's folder, checked, then renamed.

    On any failure (network, checksum) the temporary file is removed and the error re-raised; ``dest`` is never
    left half-written. ``opener`` (default ``urllib.request.urlopen``) returns a file-like response.
    """
    opener = opener or (lambda u: urllib.request.urlopen(u, timeout=60))
    with atomic_path(dest) as tmp:
        with open(tmp, "wb") as out:
            response = opener(url)
            try:
                for block in iter(lambda: response.read(1 << 20), b""):
                    out.write(block)
            finally:
                close = getattr(response, "close", None)
                if close is not None:
                    close()
        got = sha256(tmp)
        if got != expected_sha256:
            raise DataError(f"download of {url} has SHA-256 {got}, expected {expected_sha256}")


def _neither(source: Source, folder: Path, reason: str) -> DataError:
    return DataError(
        f"data set {source.name!r} is not available: {reason}. Either let it download into the cache "
        f"({folder}; set ${ENV_VAR} or pass cache_dir= / --cache-dir to move it) on a machine with internet, "
        f"or pass data_dir= / --data-dir naming a folder that holds the four IDX files {', '.join(source.files)}"
    )


def locate(
    dataset: str = "mnist",
    data_dir: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    download_missing: bool = True,
    mirrors: tuple[str, ...] | None = None,
    opener: Opener | None = None,
) -> tuple[Path, dict[str, str | None]]:
    """The folder holding ``dataset``'s four files and the checksum each must match (downloading if needed)."""
    if dataset not in SOURCES and data_dir is None:
        raise ValueError(f"dataset must be one of {sorted(SOURCES)} (or pass data_dir=), got {dataset!r}")
    if data_dir is not None:
        folder = Path(data_dir).expanduser()
        if not folder.is_dir():
            raise DataError(f"data_dir {folder} is not a folder (expected one holding {', '.join(FILES)})")
        known = SOURCES[dataset].sha256 if dataset in SOURCES else {}
        listed = read_checksums(folder)
        sums = {f: known.get(f) or listed.get(f) for f in FILES}
        missing = [f for f in FILES if not (folder / f).is_file()]
        if missing:
            raise DataError(f"data_dir {folder} lacks {', '.join(missing)} (it must hold {', '.join(FILES)})")
        return folder, sums
    source = SOURCES[dataset]
    folder = (Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()) / dataset
    for name in source.files:
        path = folder / name
        if path.is_file():
            continue
        if not download_missing:
            raise _neither(source, folder, f"{path} is missing and downloading is switched off")
        errors = []
        for base in mirrors or source.mirrors:
            try:
                download(base + name, path, source.sha256[name], opener)
                break
            except Exception as err:  # every mirror is tried before giving up
                errors.append(f"{base + name}: {err}")
        else:
            raise _neither(source, folder, "download failed (" + "; ".join(errors) + ")")
    return folder, dict(source.sha256)


def load(
    dataset: str = "mnist",
    data_dir: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    download: bool = True,
    mirrors: tuple[str, ...] | None = None,
    opener: Opener | None = None,
) -> DataSet:
    """Load an IDX data set as tensors, verifying every file's SHA-256 (see the module docstring for the order).

    Example: ``ds = load("mnist", data_dir="../shared/data/mnist"); ds.train.images.shape == (60000, 28, 28)``.
    """
    folder, sums = locate(dataset, data_dir, cache_dir, download, mirrors, opener)
    tensors = [read_idx(folder / f, sums.get(f)) for f in FILES]
    for images, labels, split in ((tensors[0], tensors[1], "train"), (tensors[2], tensors[3], "t10k")):
        if labels.ndim != 1 or images.shape[0] != labels.shape[0]:
            raise DataError(
                f"{folder}: {split} images of shape {tuple(images.shape)} do not match labels of shape "
                f"{tuple(labels.shape)} (expected one label per image)"
            )
    return DataSet(
        dataset,
        Split(tensors[0], tensors[1].long()),
        Split(tensors[2], tensors[3].long()),
        folder,
    )
