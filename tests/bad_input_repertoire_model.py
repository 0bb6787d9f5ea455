"""Rows of the bad-input table (tests/test_bad_input.py) for the repertoire model: the classifier's entry points
(embed, embed_onehot, head, classify, forward). Recipes have their own table (tests/test_repertoire_model.py)."""

from __future__ import annotations

import torch

from assocmem.repertoire import RepertoireClassifier, RepertoireConfig, encode
from assocmem.repertoire.embedding import one_hot
from tests.bad_input_cases import INF, NAN, Bad, meta, poke

MODEL = RepertoireClassifier(RepertoireConfig(dim=4, kernel=3, heads=2, hidden=4, abundance=True))
CODES, LENGTHS = encode(["CASSF", "CAW", "CSARDF"])
COUNTS = torch.ones(3, dtype=torch.int64)
ONEHOT = one_hot(CODES)
H = torch.randn(3, 4)
INTEGERS = "integer codes: no NaN or Inf exists"


def coded_rows(f: object, *extra: object) -> dict:
    return {
        "nan": INTEGERS,
        "inf": INTEGERS,
        "last_dim": Bad(lambda: f(CODES, LENGTHS[:2], *extra), "lengths"),
        "rank": Bad(lambda: f(CODES[0], LENGTHS, *extra), "codes"),
        "empty": Bad(lambda: f(CODES[:0], LENGTHS[:0], *extra), "codes"),
        "dtype": Bad(lambda: f(CODES.long(), LENGTHS, *extra), "codes"),
        "meta": Bad(lambda: f(meta(CODES), LENGTHS, *extra), "meta"),
        "option": Bad(lambda: f(CODES, LENGTHS + 4, *extra), "lengths"),
    }


TABLE = {
    "RepertoireClassifier.embed": coded_rows(MODEL.embed),
    "RepertoireClassifier.classify": coded_rows(MODEL.classify, COUNTS)
    | {"option": Bad(lambda: MODEL.classify(CODES, LENGTHS, COUNTS - 1), "counts")},
    "RepertoireClassifier.embed_onehot": {
        "nan": Bad(lambda: MODEL.embed_onehot(poke(ONEHOT, NAN), LENGTHS), "onehot"),
        "inf": Bad(lambda: MODEL.embed_onehot(poke(ONEHOT, INF), LENGTHS), "onehot"),
        "last_dim": Bad(lambda: MODEL.embed_onehot(ONEHOT[..., :19], LENGTHS), "onehot"),
        "rank": Bad(lambda: MODEL.embed_onehot(ONEHOT[0], LENGTHS), "onehot"),
        "empty": Bad(lambda: MODEL.embed_onehot(ONEHOT[:0], LENGTHS[:0]), "onehot"),
        "dtype": Bad(lambda: MODEL.embed_onehot(ONEHOT.double(), LENGTHS), "onehot"),
        "meta": Bad(lambda: MODEL.embed_onehot(meta(ONEHOT), LENGTHS), "meta"),
        "option": Bad(lambda: MODEL.embed_onehot(ONEHOT, LENGTHS + 4), "lengths"),
    },
    "RepertoireClassifier.head": {
        "nan": Bad(lambda: MODEL.head(poke(H, NAN), COUNTS), "embeddings"),
        "inf": Bad(lambda: MODEL.head(poke(H, INF), COUNTS), "embeddings"),
        "last_dim": Bad(lambda: MODEL.head(H[:, :3], COUNTS), "embeddings"),
        "rank": Bad(lambda: MODEL.head(H[0], COUNTS), "embeddings"),
        "empty": Bad(lambda: MODEL.head(H[:0], COUNTS[:0]), "embeddings"),
        "dtype": Bad(lambda: MODEL.head(H.double(), COUNTS), "embeddings"),
        "meta": Bad(lambda: MODEL.head(meta(H), COUNTS), "meta"),
        "option": Bad(lambda: MODEL.head(H, COUNTS[:2]), "counts"),
    },
    "RepertoireClassifier.forward": {
        "nan": INTEGERS,
        "inf": INTEGERS,
        **{
            k: "takes a Repertoire, whose codes, lengths and counts are checked when it is made "
            "(tests/bad_input_repertoire.py)"
            for k in ("last_dim", "rank", "empty", "meta", "option")
        },
        "dtype": Bad(lambda: MODEL(CODES), "Repertoire"),
    },
}

NO_TENSOR_INPUT = {
    "RepertoireClassifier": "takes a RepertoireConfig (tests/test_repertoire_model.py refuses bad recipes by name)",
    "RepertoireConfig": "settings, no tensor: tests/test_repertoire_model.py names each bad one",
    "RepertoireConfig.to_dict": "no input",
    "RepertoireConfig.from_dict": "settings, no tensor (as RepertoireConfig)",
    "RepertoireConfig.load": "a recipe file: tests/test_repertoire_model.py",
    "RepertoireOutput": "a result: holds tensors, takes none",
}
