"""Simulated repertoire data sets: background junctions, and a motif implanted into a fraction of the sequences of
the positive bags (the witness rate); deterministic from a seed, no download.

A data set folder holds ``metadata.tsv`` (``repertoire_id`` and ``label``), one AIRR-style TSV per repertoire under
``repertoires/`` (``sequence_id``, ``junction_aa``, ``duplicate_count``) and ``truth.json``: the motif, every
setting, and per bag the indices of the implanted sequences (``witness``) and of the background sequences that
contain the motif by chance (``chance``; they make the task harder, as in real data, and are left in place).
The folder is written under a temporary name beside it and renamed into place when complete, so a failed or
interrupted run leaves nothing half-written.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from assocmem.checks import is_count, is_fraction
from assocmem.files import write_json, write_text
from assocmem.repertoire.alphabet import decode
from assocmem.repertoire.background import SHORTEST, chance_rate, sample_background, sample_counts
from assocmem.repertoire.dataset import METADATA, REPERTOIRES, TRUTH, RepertoireDataset
from assocmem.repertoire.motif import Motif

#: The motif implanted by default: four letters and a gap, rare enough by chance (about 1e-5 per background
#: junction, :func:`assocmem.repertoire.background.chance_rate`) that one witness in 10^4 sequences is a signal.
DEFAULT_MOTIF = "RDW/H"
#: The version of the folder layout truth.json records.
FORMAT = 1
#: The header of every simulated repertoire file.
HEADER = "sequence_id\tjunction_aa\tduplicate_count\n"


def _check(
    bags: object,
    bag_size: object,
    witness_rate: object,
    positive_fraction: object,
    substitution: object,
    abundance_alpha: object,
    seed: object,
) -> tuple[int, int]:
    who = "simulate"
    if not is_count(bags, 2):
        raise ValueError(f"{who}: bags must be an integer >= 2, got {bags!r}")
    sizes = bag_size if isinstance(bag_size, tuple) else (bag_size, bag_size)
    if len(sizes) != 2 or not all(is_count(s) for s in sizes) or sizes[0] > sizes[1]:
        raise ValueError(f"{who}: bag_size must be an integer >= 1 or a pair (least, most), got {bag_size!r}")
    if not is_fraction(witness_rate) or witness_rate == 0:
        raise ValueError(f"{who}: witness_rate must be a fraction in (0, 1], got {witness_rate!r}")
    if not is_fraction(positive_fraction) or positive_fraction in (0, 1):
        raise ValueError(f"{who}: positive_fraction must lie in (0, 1), got {positive_fraction!r}")
    if not is_fraction(substitution):
        raise ValueError(f"{who}: substitution must be a probability in [0, 1], got {substitution!r}")
    if (
        isinstance(abundance_alpha, bool)
        or not isinstance(abundance_alpha, int | float)
        or not abundance_alpha > 0
    ):
        raise ValueError(f"{who}: abundance_alpha must be a positive number, got {abundance_alpha!r}")
    if not is_count(seed, 0) or seed >= 2**63:
        raise ValueError(f"{who}: seed must be an integer in [0, 2**63), got {seed!r}")
    return sizes


def implant(
    codes: np.ndarray,
    lengths: np.ndarray,
    rows: np.ndarray,
    motif: Motif,
    substitution: float,
    rng: np.random.Generator,
) -> None:
    """Write ``motif`` into the sequences ``rows`` of ``codes`` in place, at a uniform start between the first and
    the last letter; gaps keep the background's letter; each letter is replaced by another amino acid with
    probability ``substitution``."""
    k = len(rows)
    starts = 1 + np.floor(rng.random(k) * (lengths[rows] - 1 - motif.span)).astype(np.int64)
    letters = np.broadcast_to(motif.codes.numpy().astype(np.int64), (k, len(motif.offsets))).copy()
    swap = rng.random(letters.shape) < substitution
    other = (letters + rng.integers(1, 20, size=letters.shape)) % 20  # any amino acid but the motif's
    letters = np.where(swap, other, letters)
    for j, o in enumerate(motif.offsets):
        codes[rows, starts + o] = letters[:, j]


def simulate(
    folder: str | os.PathLike,
    *,
    bags: int,
    bag_size: int | tuple[int, int],
    witness_rate: float,
    motif: Motif | str = DEFAULT_MOTIF,
    seed: int,
    positive_fraction: float = 0.5,
    substitution: float = 0.0,
    abundance_alpha: float = 1.5,
    progress: Callable[[int], None] | None = None,
) -> RepertoireDataset:
    """Write a simulated data set into ``folder`` (new or empty) and open it.

    Args:
        bags: repertoires; ``round(positive_fraction * bags)`` of them positive, in a shuffled order.
        bag_size: sequences per bag, or ``(least, most)`` for sizes drawn uniformly.
        witness_rate: the fraction of a positive bag's sequences that carry the motif: ``max(1, round(rate * n))``
            sequences of a bag of ``n``, chosen uniformly. Negative bags get none.
        motif: a :class:`Motif` or its pattern (``"RDW/H"``; ``/`` a gap of one position).
        seed: every draw follows from it; bag ``i`` draws from its own stream ``(seed, i)``.
        substitution: probability that an implanted letter is replaced by another amino acid.
        abundance_alpha: tail exponent of the clonal abundances, ``P(count >= c) = c**-alpha``.
        progress: called with 1 after each bag is written (a progress bar's ``update``).
    """
    least, most = _check(bags, bag_size, witness_rate, positive_fraction, substitution, abundance_alpha, seed)
    motif = motif if isinstance(motif, Motif) else Motif.parse(motif)
    if motif.span > SHORTEST - 2:
        raise ValueError(f"simulate: motif {motif} spans {motif.span} positions; at most {SHORTEST - 2} fit")
    folder = Path(folder)
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise ValueError(f"simulate: {folder} exists and is not an empty folder; name a new one")
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".part", dir=folder.parent))
    try:
        truth = _write(
            tmp,
            bags,
            least,
            most,
            witness_rate,
            motif,
            seed,
            positive_fraction,
            substitution,
            abundance_alpha,
            progress,
        )
        write_json(tmp / TRUTH, truth)
        if folder.exists():
            folder.rmdir()
        os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return RepertoireDataset.open(folder)


def _write(
    tmp: Path,
    bags: int,
    least: int,
    most: int,
    witness_rate: float,
    motif: Motif,
    seed: int,
    positive_fraction: float,
    substitution: float,
    alpha: float,
    progress: Callable[[int], None] | None,
) -> dict:
    order = np.random.default_rng([seed, 2**32]).permutation(bags)
    positives = round(positive_fraction * bags)
    labels = (order < positives).astype(np.int64)
    names = [f"rep_{i:05d}" for i in range(bags)]
    (tmp / REPERTOIRES).mkdir()
    per_bag = {}
    for i, name in enumerate(names):
        rng = np.random.default_rng([seed, i])
        n = int(rng.integers(least, most + 1))
        codes, lengths = sample_background(n, rng)
        t_codes, t_lengths = torch.from_numpy(codes), torch.from_numpy(lengths)
        chance = np.flatnonzero(motif.occurs(t_codes, t_lengths).numpy())
        witness = np.array([], dtype=np.int64)
        if labels[i]:
            w = max(1, round(witness_rate * n))
            witness = np.sort(rng.choice(n, size=w, replace=False))
            implant(codes, lengths, witness, motif, substitution, rng)
        counts = sample_counts(n, rng, alpha)
        sequences = decode(t_codes, t_lengths)
        body = "".join(
            f"{j}\t{s}\t{c}\n" for j, (s, c) in enumerate(zip(sequences, counts.tolist(), strict=True))
        )
        # a plain write: the whole folder is renamed into place once complete
        (tmp / REPERTOIRES / f"{name}.tsv").write_text(HEADER + body, encoding="utf-8")
        per_bag[name] = {
            "label": int(labels[i]),
            "size": n,
            "witness": witness.tolist(),
            "chance": chance.tolist(),
        }
        if progress is not None:
            progress(1)
    write_text(
        tmp / METADATA,
        "repertoire_id\tlabel\n"
        + "".join(f"{m}\t{y}\n" for m, y in zip(names, labels.tolist(), strict=True)),
    )
    expected = chance_rate(list(zip(motif.offsets, motif.codes.tolist(), strict=True)), motif.span)
    found = sum(len(b["chance"]) for b in per_bag.values())
    total = sum(b["size"] for b in per_bag.values())
    return {
        "format": FORMAT,
        "motif": motif.pattern,
        "settings": {
            "bags": bags,
            "bag_size": [least, most],
            "witness_rate": witness_rate,
            "seed": seed,
            "positive_fraction": positive_fraction,
            "substitution": substitution,
            "abundance_alpha": alpha,
        },
        "chance": {
            "expected_per_sequence": expected,
            "found": found,
            "found_per_sequence": found / total,
            "note": "background sequences that contain the motif by chance (both classes); left in place",
        },
        "bags": per_bag,
    }
