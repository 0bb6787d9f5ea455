"""A repertoire data set: a folder with a metadata file of labels and one repertoire file per bag.

Layout: ``metadata.tsv`` (tab-separated, a header line) names each repertoire in its first column found of
:data:`NAME_COLUMNS` (``repertoire_id``; DeepRC's ``ID``) and gives its label in ``label_column``; the repertoire
``NAME`` is the file ``NAME`` or ``NAME.tsv``, in the folder or in its ``repertoires/`` subfolder (a name may carry
its ``.tsv`` suffix, as DeepRC's do). Labels are ``1``/``0``, ``+``/``-`` (DeepRC's) or ``true``/``false``. A
simulated set also has ``truth.json`` (:mod:`assocmem.repertoire.simulate`): the motif and which sequences carry it.

Bags are read one at a time when asked for (:meth:`RepertoireDataset.__getitem__`), through the encoded cache in
``.cache/`` (:mod:`assocmem.repertoire.cache`). Every malformed metadata file is a ``FileFormatError`` naming the
file, the line and the column: a missing column, a duplicate repertoire id, a bad label, a row naming a missing file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from assocmem.checks import is_fraction
from assocmem.repertoire.airr import (
    FileFormatError,
    check_text_start,
    decode_line,
    find_column,
    split_header,
    where,
)
from assocmem.repertoire.bag import Repertoire
from assocmem.repertoire.cache import read_cached

METADATA = "metadata.tsv"
REPERTOIRES = "repertoires"
TRUTH = "truth.json"
CACHE = ".cache"
#: Column names of the repertoire id in the metadata file, in order of preference.
NAME_COLUMNS = ("repertoire_id", "ID", "id")
#: How a label may be written.
LABELS = {"1": 1, "+": 1, "true": 1, "0": 0, "-": 0, "false": 0}


def _label(path: Path, line: int, column: str, text: str) -> int:
    value = LABELS.get(text.strip().lower())
    if value is None:
        raise FileFormatError(
            f"{where(path, line, column)}: the label {text!r} is not one of 1/0, +/-, true/false"
        )
    return value


def read_metadata(path: Path, label_column: str | None) -> tuple[list[str], list[int | None]]:
    """Repertoire names and labels (None for every bag when ``label_column`` is None) of a metadata file."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no metadata file (a data set folder holds {METADATA})")
    raw = path.read_bytes()
    raw = raw[check_text_start(path, raw[:4]) :]
    lines = raw.split(b"\n")
    header = split_header(path, lines[0])
    ni = find_column(path, header, NAME_COLUMNS, "repertoire id", True)
    li = None if label_column is None else find_column(path, header, (label_column,), "label", True)
    names: list[str] = []
    labels: list[int | None] = []
    first_seen: dict[str, int] = {}
    for k, line in enumerate(lines[1:], start=2):
        line = line.rstrip(b"\r")
        if not line:
            if any(rest.strip() for rest in lines[k:]):
                raise FileFormatError(f"{where(path, k)}: an empty line between rows")
            break
        fields = decode_line(path, k, line).split("\t")
        if len(fields) != len(header):
            raise FileFormatError(
                f"{where(path, k)}: {len(fields)} tab-separated fields; the header names {len(header)} columns"
            )
        name = fields[ni].strip()
        if not name:
            raise FileFormatError(f"{where(path, k, header[ni])}: an empty repertoire id")
        if name in first_seen:
            raise FileFormatError(
                f"{where(path, k, header[ni])}: the repertoire id {name!r} is also on line {first_seen[name]}"
            )
        first_seen[name] = k
        names.append(name)
        labels.append(None if li is None else _label(path, k, header[li], fields[li]))
    if not names:
        raise FileFormatError(f"{where(path, 2)}: the metadata names no repertoire (only a header)")
    return names, labels


def find_file(folder: Path, name: str) -> Path | None:
    """The repertoire file of ``name``: ``name`` or ``name.tsv`` in ``folder`` or ``folder/repertoires``."""
    for base in (folder, folder / REPERTOIRES):
        for candidate in (base / name, base / f"{name}.tsv"):
            if candidate.is_file():
                return candidate
    return None


class RepertoireDataset:
    """The repertoires of a data set folder (module docstring), read one bag at a time.

    Attributes:
        folder: the data set folder.
        names: each repertoire's id (a file suffix ``.tsv`` removed).
        labels: int64 ``(len,)``: 0 or 1, or -1 for an unlabelled set (``label_column=None``).
        files: each repertoire's file.
        truth: the contents of ``truth.json`` for a simulated set, else None.
    """

    def __init__(
        self,
        folder: Path,
        names: list[str],
        files: list[Path],
        labels: list[int | None],
        truth: dict | None,
        cache: Path | None,
    ) -> None:
        self.folder, self.names, self.files, self.truth, self.cache = folder, names, files, truth, cache
        self._labels = labels
        self.labels: Tensor = torch.tensor([-1 if y is None else y for y in labels], dtype=torch.int64)

    @classmethod
    def open(
        cls, folder: str | os.PathLike, *, label_column: str | None = "label", cache: bool = True
    ) -> RepertoireDataset:
        """Open the data set in ``folder``: read its metadata and check every repertoire file exists.

        ``cache=False`` reads every bag from its text file; else encoded bags are kept in ``folder/.cache``.
        """
        folder = Path(folder)
        if not folder.is_dir():
            raise FileNotFoundError(f"RepertoireDataset.open: {folder} is not a folder")
        if label_column is not None and not isinstance(label_column, str):
            raise TypeError(
                f"RepertoireDataset.open: label_column must be a column name or None, got {label_column!r}"
            )
        meta = folder / METADATA
        names, labels = read_metadata(meta, label_column)
        files = []
        for k, name in enumerate(names, start=2):
            file = find_file(folder, name)
            if file is None:
                raise FileFormatError(
                    f"{where(meta, k)}: the repertoire {name!r} has no file ({name} or {name}.tsv in {folder} "
                    f"or {folder / REPERTOIRES})"
                )
            files.append(file)
        names = [n.removesuffix(".tsv") for n in names]
        truth = None
        if (folder / TRUTH).is_file():
            truth = json.loads((folder / TRUTH).read_text(encoding="utf-8"))
        return cls(folder, names, files, labels, truth, folder / CACHE if cache else None)

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, i: int) -> Repertoire:
        if isinstance(i, bool) or not isinstance(i, int | np.integer):
            raise TypeError(f"RepertoireDataset: an index must be an integer, got {type(i).__name__}")
        if not -len(self) <= i < len(self):
            raise IndexError(f"RepertoireDataset: index {i} is out of range for {len(self)} repertoires")
        i = int(i) % len(self)
        name = self.names[i]
        entry = None if self.cache is None else self.cache / f"{name}.safetensors"
        bag = read_cached(self.files[i], entry)
        witness = None
        if self.truth is not None and name in self.truth.get("bags", {}):
            witness = torch.zeros(len(bag.lengths), dtype=torch.bool)
            witness[torch.tensor(self.truth["bags"][name]["witness"], dtype=torch.int64)] = True
        return Repertoire(name, bag.codes, bag.lengths, bag.counts, self._labels[i], witness)

    def split(self, *, seed: int, test: float = 0.2, validation: float = 0.2) -> dict[str, list[int]]:
        """Indices of a stratified split: ``{"train", "validation", "test"}``, each sorted.

        Within each class the bags are shuffled by ``seed`` and ``round(test * n)`` go to test, ``round(validation
        * n)`` to validation, the rest to training; the same seed always gives the same split.
        """
        if not is_fraction(test) or not is_fraction(validation) or test + validation >= 1:
            raise ValueError(
                f"RepertoireDataset.split: test and validation must be fractions summing below 1, got "
                f"{test!r} and {validation!r}"
            )
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"RepertoireDataset.split: seed must be an integer >= 0, got {seed!r}")
        rng = np.random.default_rng([seed, 7])
        out: dict[str, list[int]] = {"train": [], "validation": [], "test": []}
        for y in sorted(set(self.labels.tolist())):
            members = rng.permutation(np.flatnonzero(self.labels.numpy() == y))
            n_test, n_val = round(test * len(members)), round(validation * len(members))
            out["test"] += members[:n_test].tolist()
            out["validation"] += members[n_test : n_test + n_val].tolist()
            out["train"] += members[n_test + n_val :].tolist()
        return {k: sorted(v) for k, v in out.items()}

    def __repr__(self) -> str:
        return f"RepertoireDataset({str(self.folder)!r}, {len(self)} repertoires)"
