"""Rows of the bad-input table (tests/test_bad_input.py) for the answers the library gives: retrieval, the
binary networks, the Hopfield layers, the classifier and the models. ``TABLE`` maps an entry point to a cell per
kind of bad input."""

from __future__ import annotations

from collections.abc import Callable

import torch

import assocmem as am
from assocmem.classifier import DAMClassifier, active, to_pixels, votes
from assocmem.engines import BinaryDAM, ClassicalHopfield
from assocmem.models import interaction, model_a, model_b
from assocmem.nn import Hopfield, HopfieldLayer, HopfieldPooling
from assocmem.nn.functional import hopfield_update
from tests.bad_input_cases import (
    IMAGES,
    INF,
    NAN,
    NO_VALUES,
    R4,
    XI,
    Y4,
    Bad,
    M,
    Q,
    Result,
    X,
    classifier,
    decoder,
    encoder,
    is_empty_of,
    layer,
    meta,
    net,
    output_of,
    poke,
    state,
)

TABLE: dict[str, dict[str, Bad | Result | str]] = {
    "retrieve": {
        "nan": Bad(lambda: am.retrieve(M, poke(Q, NAN)), "queries"),
        "inf": Bad(lambda: am.retrieve(poke(M, INF, 5), Q), "patterns"),
        "last_dim": Bad(lambda: am.retrieve(M, Q[:, :3]), "queries"),
        "rank": Bad(lambda: am.retrieve(M[0], Q), "patterns"),
        "empty": Bad(lambda: am.retrieve(M[:0], Q), "patterns"),
        "dtype": Bad(lambda: am.retrieve(M, Q.double()), "queries"),
        "meta": Bad(lambda: am.retrieve(M, meta(Q)), "queries"),
        "option": Bad(lambda: am.retrieve(M, Q, beta=-1.0), "beta"),
    },
    "hopfield_update": {
        "nan": Bad(lambda: hopfield_update(poke(R4, NAN), Y4, Y4, 1.0), "states"),
        "inf": Bad(lambda: hopfield_update(R4, Y4, poke(Y4, INF), 1.0), "values"),
        "last_dim": Bad(lambda: hopfield_update(R4, Y4[..., :3], Y4, 1.0), "patterns"),
        "rank": Bad(lambda: hopfield_update(R4[0], Y4, Y4, 1.0), "states"),
        "empty": Bad(lambda: hopfield_update(R4, Y4[:, :, :0], Y4[:, :, :0], 1.0), "patterns"),
        "dtype": Bad(lambda: hopfield_update(R4, Y4.double(), Y4, 1.0), "patterns"),
        "meta": Bad(lambda: hopfield_update(R4, meta(Y4), Y4, 1.0), "patterns"),
        "option": Bad(lambda: hopfield_update(R4, Y4, Y4, 1.0, stop_on="energy"), "stop_on"),
    },
    "relax": {
        "nan": Bad(lambda: am.relax(net(), state(poke(Q, NAN))), r"state\['v'\]"),
        "inf": Bad(
            lambda: am.relax(net(), state(Q), inputs={"v": poke(torch.zeros(4), INF)}), r"inputs\['v'\]"
        ),
        "last_dim": Bad(lambda: am.relax(net(), state(Q[:, :3])), r"state\['v'\]"),
        "rank": Bad(lambda: am.relax(net(), state(Q[0], torch.zeros(12))), r"state\['v'\]"),
        "empty": Result(
            lambda: am.relax(net(), state(Q[:0]), method="euler", t_max=1.0).states["v"],
            is_empty_of((0, 4)),
            "an empty batch relaxes to an empty batch",
        ),
        "dtype": Bad(lambda: am.relax(net(), state(Q.double())), "state"),
        "meta": Bad(lambda: am.relax(net(), state(meta(Q), meta(torch.zeros(3, 12)))), r"state\['v'\]"),
        "option": Bad(lambda: am.relax(net(), state(Q), dt=-1.0), "dt"),
    },
    "overlap": {
        "nan": Bad(lambda: am.overlap(poke(XI[:2], NAN), XI), "states"),
        "inf": Bad(lambda: am.overlap(XI[:2], poke(XI, INF)), "patterns"),
        "last_dim": Bad(lambda: am.overlap(XI[:2, :9], XI), "states"),
        "rank": Bad(lambda: am.overlap(XI[0], XI), "states"),
        "empty": Bad(lambda: am.overlap(XI[:2], XI[:0]), "patterns"),
        "dtype": Bad(lambda: am.overlap(XI[:2].double(), XI), "states"),
        "meta": Bad(lambda: am.overlap(meta(XI[:2]), XI), "states"),
        "option": NO_VALUES.replace("options only", "no options"),
    },
    "BinaryDAM": {
        "nan": Bad(lambda: BinaryDAM(poke(XI, NAN), "power", n=3), "patterns"),
        "inf": Bad(lambda: BinaryDAM(poke(XI, INF), "power", n=3), "patterns"),
        "last_dim": "any N",
        "rank": Bad(lambda: BinaryDAM(XI[0], "power", n=3), "patterns"),
        "empty": Bad(lambda: BinaryDAM(XI[:0], "power", n=3), "patterns"),
        "dtype": Bad(lambda: BinaryDAM(XI.bool(), "power", n=3), "patterns"),
        "meta": Bad(lambda: BinaryDAM(meta(XI), "power", n=3), "patterns"),
        "option": Bad(lambda: BinaryDAM(XI, "power", n=0), "n"),
    },
    "ClassicalHopfield": {
        "nan": Bad(lambda: ClassicalHopfield(poke(XI, NAN)), "patterns"),
        "inf": Bad(lambda: ClassicalHopfield(poke(XI, -INF)), "patterns"),
        "last_dim": "any N",
        "rank": Bad(lambda: ClassicalHopfield(XI[None]), "patterns"),
        "empty": Bad(lambda: ClassicalHopfield(XI[:, :0]), "patterns"),
        "dtype": Bad(lambda: ClassicalHopfield(XI.to(torch.complex64)), "patterns"),
        "meta": Bad(lambda: ClassicalHopfield(meta(XI)), "patterns"),
        "option": "no options",
    },
    "Hopfield": {
        "nan": Bad(lambda: Hopfield(8, scaling=NAN), "scaling"),
        "inf": Bad(lambda: Hopfield(8, update_steps_eps=INF), "update_steps_eps"),
        "last_dim": Bad(lambda: Hopfield(8, hidden_size=0), "hidden_size"),
        "rank": Bad(lambda: Hopfield(8, num_heads=2, scaling=torch.ones(2, 1)), "scaling"),
        "empty": Bad(lambda: Hopfield(input_size=0), "input_size"),
        "dtype": Bad(lambda: Hopfield(8, scaling=True), "scaling"),
        "meta": Bad(lambda: Hopfield(8, scaling=torch.ones(1, device="meta")), "scaling"),
        "option": Bad(lambda: Hopfield(8, scaling=-1.0), "scaling"),
    },
    "DAMClassifier": {
        "nan": Bad(lambda: DAMClassifier(poke(torch.zeros(5, 794), NAN)), "memories"),
        "inf": Bad(lambda: DAMClassifier(poke(torch.zeros(5, 794), INF)), "memories"),
        "last_dim": Bad(lambda: DAMClassifier(torch.zeros(5, 793)), "memories"),
        "rank": Bad(lambda: DAMClassifier(torch.zeros(794)), "memories"),
        "empty": Bad(lambda: DAMClassifier(torch.zeros(0, 794)), "memories"),
        "dtype": Bad(lambda: DAMClassifier(torch.zeros(5, 794, dtype=torch.int64)), "memories"),
        "meta": Bad(lambda: DAMClassifier(meta(torch.zeros(5, 794))), "memories"),
        "option": Bad(lambda: DAMClassifier(5, temperature=0.0), "temperature"),
    },
    "to_pixels": {
        "nan": "uint8 input holds no NaN",
        "inf": "uint8 input holds no Inf",
        "last_dim": "any image shape",
        "rank": Bad(lambda: to_pixels(torch.zeros(5, dtype=torch.uint8)), "images"),
        "empty": Result(
            lambda: to_pixels(torch.zeros(0, 28, 28, dtype=torch.uint8)), is_empty_of((0, 784)), "no image"
        ),
        "dtype": Bad(lambda: to_pixels(torch.zeros(2, 4)), "images"),
        "meta": Bad(lambda: to_pixels(meta(torch.zeros(2, 4, dtype=torch.uint8))), "images"),
        "option": "no options",
    },
    "votes": {
        "nan": Bad(lambda: votes(poke(torch.randn(5, 10), NAN)), "label_weights"),
        "inf": Bad(lambda: votes(poke(torch.randn(5, 10), INF)), "label_weights"),
        "last_dim": Bad(lambda: votes(torch.randn(5, 1)), "label_weights"),
        "rank": Bad(lambda: votes(torch.randn(5)), "label_weights"),
        "empty": Result(lambda: votes(torch.randn(0, 10)).count, is_empty_of((0,)), "no memory, no vote"),
        "dtype": Bad(lambda: votes([[1.0, 2.0]]), "label_weights"),
        "meta": Bad(lambda: votes(meta(torch.randn(5, 10))), "label_weights"),
        "option": "threshold is any number",
    },
    "active": {
        "nan": Bad(lambda: active(classifier(), poke(IMAGES, NAN)), "images"),
        "inf": Bad(lambda: active(classifier(), poke(IMAGES, INF)), "images"),
        "last_dim": Bad(lambda: active(classifier(), IMAGES[:, :700]), "images"),
        "rank": Bad(lambda: active(classifier(), IMAGES[0]), "images"),
        "empty": Bad(lambda: active(classifier(), IMAGES[:0]), "images"),
        "dtype": Bad(lambda: active(classifier(), IMAGES.double()), "images"),
        "meta": Bad(lambda: active(classifier(), meta(IMAGES)), "images"),
        "option": "no options",
    },
    "model_b": {
        "nan": Bad(lambda: model_b(poke(M, NAN)), "patterns"),
        "inf": Bad(lambda: model_b(poke(M, INF)), "patterns"),
        "last_dim": "any width",
        "rank": Bad(lambda: model_b(M[0]), "patterns"),
        "empty": Bad(lambda: model_b(M[:0]), "patterns"),
        "dtype": Bad(lambda: model_b(M.long()), "patterns"),
        "meta": Bad(lambda: model_b(meta(M)), "patterns"),
        "option": Bad(lambda: model_b(M, beta=0.0), "beta"),
    },
    "interaction": {
        **dict.fromkeys(("nan", "inf", "last_dim", "rank", "empty", "dtype", "meta"), NO_VALUES),
        "option": Bad(lambda: interaction("power", n=2.5), "n"),
    },
}

# Classes whose constructors are covered by one family row and whose public methods are rows of their own.
for name, make in {
    "model_a": lambda p, **kw: model_a(p, **kw),
    "model_c": lambda p, **kw: am.models.model_c(p, **kw),
    "continuous_hopfield": lambda p, **kw: am.models.continuous_hopfield(p, **kw),
    "microscopic": lambda p, **kw: am.models.microscopic(p, am.Identity(), am.LogSumExp(), **kw),
}.items():
    TABLE[name] = {
        "nan": Bad(lambda make=make: make(poke(M, NAN)), "patterns"),
        "inf": Bad(lambda make=make: make(poke(M, -INF)), "patterns"),
        "last_dim": "any width",
        "rank": Bad(lambda make=make: make(M[None]), "patterns"),
        "empty": Bad(lambda make=make: make(M[:, :0]), "patterns"),
        "dtype": Bad(lambda make=make: make(M.int()), "patterns"),
        "meta": Bad(lambda make=make: make(meta(M)), "patterns"),
        "option": Bad(lambda make=make: make(M, tau_h=-1.0), "tau"),
    }


def _binary_rows(cls_name: str, make: Callable[[], object]) -> None:
    """The methods of a binary network: every one takes +-1 states ``(batch, N)``."""
    for method in ("energy", "slog_energy", "field", "recall"):
        arg = "cues" if method == "recall" else "sigma"

        def call(x, method=method, **kw):
            return getattr(make(), method)(x, **kw)

        TABLE[f"{cls_name}.{method}"] = {
            "nan": Bad(lambda call=call: call(poke(XI[:2], NAN)), arg),
            "inf": Bad(lambda call=call: call(poke(XI[:2], INF)), arg),
            "last_dim": Bad(lambda call=call: call(XI[:2, :9]), arg),
            "rank": Bad(lambda call=call: call(XI[0]), arg),
            "empty": Result(
                lambda call=call: call(XI[:0]),
                lambda out: (
                    (
                        out.states if hasattr(out, "states") else out[0] if isinstance(out, tuple) else out
                    ).shape[0]
                    == 0
                ),
                "an empty batch gives an empty answer",
            ),
            "dtype": Bad(lambda call=call: call(XI[:2].bool()), arg),
            "meta": Bad(lambda call=call: call(meta(XI[:2])), arg),
            "option": Bad(lambda call=call: call(XI[:2], mode="fast"), "mode")
            if method == "recall"
            else "no options",
        }


_binary_rows("BinaryDAM", lambda: BinaryDAM(XI, "power", n=3))
_binary_rows("ClassicalHopfield", lambda: ClassicalHopfield(XI))


def _sequence_rows(key: str, call: Callable[..., object], name: str, **extra: Bad | Result | str) -> None:
    """A layer method on sequences ``(batch, length, 8)``; ``call(x, **masks)`` runs it, ``name`` is the argument."""
    TABLE[key] = {
        "nan": Bad(lambda: call(poke(X, NAN)), name),
        "inf": Bad(lambda: call(poke(X, -INF, 7)), name),
        "last_dim": Bad(lambda: call(X[..., :5]), name),
        "rank": Bad(lambda: call(X[0]), name),
        "empty": Bad(lambda: call(X[:, :0]), name),
        "dtype": Bad(lambda: call(X.double()), name),
        "meta": Bad(lambda: call(meta(X)), name),
        "option": Bad(
            lambda: call(X, stored_pattern_padding_mask=torch.zeros(2, 3, dtype=torch.bool)),
            "stored_pattern_padding_mask",
        ),
        **extra,
    }


for method in ("forward", "associate", "retrieve", "energy", "association_matrix", "get_association_matrix"):
    _sequence_rows(
        f"Hopfield.{method}", lambda x, method=method, **kw: getattr(layer(), method)(x, **kw), "input"
    )
for cls, make in (
    ("HopfieldLayer", lambda: HopfieldLayer(8, quantity=4)),
    ("HopfieldPooling", lambda: HopfieldPooling(8, quantity=2)),
):
    for method in ("forward", "retrieve", "energy", "association_matrix", "get_association_matrix"):

        def call(x, make=make, method=method, **kw):
            return getattr(make(), method)(x, **kw)

        extra = {}
        if cls == "HopfieldLayer":  # the input is the state patterns: an empty sequence asks nothing
            extra["empty"] = Result(
                lambda call=call: call(X[:, :0]),
                lambda out: 0 in output_of(out).shape,
                "no state pattern, no answer",
            )
        _sequence_rows(f"{cls}.{method}", call, "input", **extra)
    TABLE[cls] = {
        **dict.fromkeys(("nan", "inf", "last_dim", "rank", "empty", "dtype", "meta"), NO_VALUES),
        "option": Bad(lambda make=make: type(make())(8, quantity=0), "quantity"),
    }
_sequence_rows(
    "HopfieldEncoderLayer.forward",
    lambda x, stored_pattern_padding_mask=None: encoder()(
        x, src_key_padding_mask=stored_pattern_padding_mask
    ),
    "src",
    option=Bad(
        lambda: encoder()(X, src_key_padding_mask=torch.zeros(2, 4, dtype=torch.bool)), "padding_mask"
    ),
)
_sequence_rows(
    "HopfieldDecoderLayer.forward",
    lambda x, stored_pattern_padding_mask=None: decoder()(
        X, x, memory_key_padding_mask=stored_pattern_padding_mask
    ),
    "memory",
    option=Bad(
        lambda: decoder()(X, X, memory_key_padding_mask=torch.zeros(2, 4, dtype=torch.bool)), "padding_mask"
    ),
)
for cls in ("HopfieldEncoderLayer", "HopfieldDecoderLayer"):
    TABLE[cls] = {
        **dict.fromkeys(
            ("nan", "inf", "last_dim", "rank", "empty", "dtype", "meta"), "takes Hopfield layers"
        ),
        "option": Bad(
            lambda cls=cls: getattr(am.nn, cls)(
                *[Hopfield(8)] * (1 + cls.startswith("HopfieldD")), dropout=2.0
            ),
            "dropout",
        ),
    }


def _image_rows(key: str, call: Callable[[torch.Tensor], object], empty: Result | Bad) -> None:
    TABLE[key] = {
        "nan": Bad(lambda: call(torch.full((3, 784), NAN)), "images"),  # the all-NaN images
        "inf": Bad(lambda: call(poke(IMAGES, INF, 900)), "images"),
        "last_dim": Bad(lambda: call(IMAGES[:, :700]), "images"),
        "rank": Bad(lambda: call(IMAGES[0]), "images"),
        "empty": empty,
        "dtype": Bad(lambda: call(IMAGES.double()), "images"),
        "meta": Bad(lambda: call(meta(IMAGES)), "images"),
        "option": "no options",
    }


_image_rows("DAMClassifier.predict", lambda x: classifier().predict(x), Result(
    lambda: classifier().predict(IMAGES[:0]), is_empty_of((0,)), "no image, no label"))  # fmt: skip
_image_rows("DAMClassifier.forward", lambda x: classifier()(x), Result(
    lambda: classifier()(IMAGES[:0]), is_empty_of((0, 10)), "no image"))  # fmt: skip
_image_rows("DAMClassifier.fields", lambda x: classifier().fields(x), Result(
    lambda: classifier().fields(IMAGES[:0]), is_empty_of((0, 10)), "no image"))  # fmt: skip
_image_rows("DAMClassifier.error", lambda x: classifier().error(x, torch.zeros(x.shape[0], dtype=torch.long)),
            Bad(lambda: classifier().error(IMAGES[:0], torch.zeros(0, dtype=torch.long)), "images"))  # fmt: skip
TABLE["DAMClassifier.labels"] = {
    "nan": Bad(lambda: DAMClassifier.labels(poke(torch.randn(4, 10), NAN)), "z"),
    "inf": Result(
        lambda: DAMClassifier.labels(poke(torch.zeros(4, 10), INF, 3)),
        lambda out: out[0] == 3,
        "an infinite field is a decided vote",
    ),
    "last_dim": Bad(lambda: DAMClassifier.labels(torch.randn(4, 0)), "z"),
    "rank": Bad(lambda: DAMClassifier.labels(torch.randn(4)), "z"),
    "empty": Result(lambda: DAMClassifier.labels(torch.randn(0, 10)), is_empty_of((0,)), "no label"),
    "dtype": Bad(lambda: DAMClassifier.labels(torch.ones(4, 10, dtype=torch.long)), "z"),
    "meta": Bad(lambda: DAMClassifier.labels(meta(torch.randn(4, 10))), "z"),
    "option": "no options",
}
