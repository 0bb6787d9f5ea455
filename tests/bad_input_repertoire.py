"""Rows of the bad-input table (tests/test_bad_input.py) for assocmem.repertoire: the amino-acid codes, the bag,
the motif and the ROC metrics. Malformed files have their own table (tests/test_repertoire_reader.py)."""

from __future__ import annotations

import torch

from assocmem.repertoire import (
    Motif,
    Repertoire,
    decode,
    encode,
    gapped_counts,
    kmer_counts,
    roc_auc,
    roc_curve,
)
from tests.bad_input_cases import INF, NAN, Bad, Result, meta, poke

CODES, LENGTHS = encode(["CASSF", "CAW", "CSARDF"])
COUNTS = torch.ones(3, dtype=torch.int64)
SCORES, LABELS = torch.tensor([0.1, 0.7, 0.3, 0.9]), torch.tensor([0, 1, 0, 1])
STRINGS = "takes strings, no tensor: a bad letter is the option row"
INTEGERS = "integer codes: no NaN or Inf exists"


def bag(**kw: object) -> Repertoire:
    args = {"name": "r", "codes": CODES, "lengths": LENGTHS, "counts": COUNTS, "label": 1} | kw
    return Repertoire(**args)


def counting_rows(f: object, small: dict, bad: dict, match: str) -> dict:
    """Rows of a bag's feature counts (k-mers, gapped k-mers): ``small`` settings give 400 features."""
    return {
        "nan": INTEGERS,
        "inf": INTEGERS,
        "last_dim": Bad(lambda: f(CODES, LENGTHS, COUNTS[:2]), "counts"),
        "rank": Bad(lambda: f(CODES[None], LENGTHS), "codes"),
        "empty": Result(
            lambda: f(CODES[:0], LENGTHS[:0], **small), lambda r: r.shape == (400,) and r.sum() == 0, "zeros"
        ),
        "dtype": Bad(lambda: f(CODES.float(), LENGTHS), "uint8"),
        "meta": Bad(lambda: f(meta(CODES), LENGTHS), "meta"),
        "option": Bad(lambda: f(CODES, LENGTHS, **bad), match),
    }


def auc_rows(f: object) -> dict:
    return {
        "nan": Bad(lambda: f(poke(SCORES, NAN), LABELS), "scores"),
        "inf": Bad(lambda: f(poke(SCORES, INF), LABELS), "scores"),
        "last_dim": Bad(lambda: f(SCORES, LABELS[:3]), "labels"),
        "rank": Bad(lambda: f(SCORES[None], LABELS[None]), "scores"),
        "empty": Bad(lambda: f(SCORES[:0], LABELS[:0]), "both classes"),
        "dtype": Bad(lambda: f(LABELS, LABELS), "scores"),
        "meta": Bad(lambda: f(meta(SCORES), LABELS), "meta"),
        "option": Bad(lambda: f(SCORES, LABELS + 1), "labels"),
    }


TABLE: dict[str, dict[str, Bad | Result | str]] = {
    "encode": {
        "nan": STRINGS,
        "inf": STRINGS,
        "last_dim": Bad(lambda: encode(["CASS", ""]), r"sequences\[1\] is empty"),
        "rank": Bad(lambda: encode([["CASS"]]), r"sequences\[0\]"),
        "empty": Result(
            lambda: encode([]), lambda r: r[0].shape == (0, 0) and r[1].shape == (0,), "no codes"
        ),
        "dtype": Bad(lambda: encode("CASS"), "list of strings"),
        "meta": STRINGS,
        "option": Bad(lambda: encode(["CASS", "CAXF"]), r"sequences\[1\] has 'X' at position 2"),
    },
    "decode": {
        "nan": INTEGERS,
        "inf": INTEGERS,
        "last_dim": Bad(lambda: decode(CODES, LENGTHS[:2]), "lengths"),
        "rank": Bad(lambda: decode(CODES[0], LENGTHS), "codes"),
        "empty": Result(lambda: decode(CODES[:0], LENGTHS[:0]), lambda r: r == [], "no sequences"),
        "dtype": Bad(lambda: decode(CODES.long(), LENGTHS), "uint8"),
        "meta": Bad(lambda: decode(meta(CODES), LENGTHS), "meta"),
        "option": Bad(lambda: decode(CODES, LENGTHS + 5), "lengths"),
    },
    "Repertoire": {
        "nan": INTEGERS,
        "inf": INTEGERS,
        "last_dim": Bad(lambda: bag(counts=COUNTS[:2]), "counts"),
        "rank": Bad(lambda: bag(codes=CODES[None]), "codes"),
        "empty": Bad(lambda: bag(codes=CODES[:0], lengths=LENGTHS[:0], counts=COUNTS[:0]), "at least one"),
        "dtype": Bad(lambda: bag(counts=COUNTS.float()), "counts"),
        "meta": Bad(lambda: bag(codes=meta(CODES)), "meta"),
        "option": Bad(lambda: bag(label=2), "label"),
    },
    "Motif.occurs": {
        "nan": INTEGERS,
        "inf": INTEGERS,
        "last_dim": Bad(lambda: Motif("SA").occurs(CODES, LENGTHS[:1]), "lengths"),
        "rank": Bad(lambda: Motif("SA").occurs(CODES.flatten(), LENGTHS), "codes"),
        "empty": Result(
            lambda: Motif("SA").occurs(CODES[:0], LENGTHS[:0]), lambda r: r.shape == (0,), "no sequences"
        ),
        "dtype": Bad(lambda: Motif("SA").occurs(CODES.int(), LENGTHS), "uint8"),
        "meta": Bad(lambda: Motif("SA").occurs(meta(CODES), LENGTHS), "meta"),
        "option": Bad(lambda: Motif("SA").occurs(CODES + 30, LENGTHS), "codes"),
    },
    "kmer_counts": counting_rows(kmer_counts, {"k": 2}, {"k": 9}, "k must"),
    "gapped_counts": counting_rows(
        gapped_counts, {"span": 2, "letters": 2}, {"span": 3, "letters": 4}, "letters must"
    ),
    "roc_auc": auc_rows(roc_auc),
    "roc_curve": auc_rows(roc_curve),
}

NO_TENSOR_INPUT: dict[str, str] = {
    "Repertoire.sequences": "no input",
    "Motif": "takes a pattern string; tests/test_repertoire_data.py checks its bad letters and gaps",
    "Motif.parse": "takes a pattern string (as Motif)",
    "Motif.matches": "takes a sequence string",
    "FileFormatError": "an exception: holds a message",
    "KmerResult": "a result: holds tensors, takes none",
    "KmerResult.to_dict": "no input",
    "simulate": "takes settings and a folder, no tensor; tests/test_repertoire_data_simulate.py names each bad one",
    "RepertoireDataset": "made by RepertoireDataset.open",
    "RepertoireDataset.open": "takes a folder; tests/test_repertoire_reader.py holds the table of malformed files",
    "RepertoireDataset.split": "takes a seed and fractions, no tensor (tests/test_repertoire_reader.py)",
    "kmer_baseline": "takes a data set and a split, no tensor (tests/test_repertoire_data_cli.py; span and k: "
    "tests/test_repertoire_gapped.py)",
}
