"""Rows of the bad-input table (tests/test_bad_input.py) for the lower floors: the Lagrangians, the network and
its terms (``FLOOR``), and the building blocks that run inside checked loops and are not checked themselves
(``BUILDING_BLOCKS``: a NaN in gives a NaN out)."""

from __future__ import annotations

from collections.abc import Callable

import torch

import assocmem as am
from assocmem.lagrangians import AdditiveLagrangian
from assocmem.models import model_b
from tests.bad_input_cases import (
    INF,
    NAN,
    NO_VALUES,
    Bad,
    M,
    Q,
    Result,
    classifier,
    is_empty_of,
    meta,
    nan_out,
    net,
    poke,
    state,
)

FLOOR: dict[str, dict[str, Bad | Result | str]] = {}
# The Lagrangians: constructors (options) and forward / activation on batched states. NaN and Inf are not
# refused there: L and g are maps, evaluated at every step of relax (which checks its states), and a NaN in gives
# a NaN out, never an ordinary answer (docs/bad-input.md, "Building blocks"); meta tensors give meta tensors.
LAGRANGIANS = {
    "Abs": (am.Abs, None),
    "Identity": (am.Identity, None),
    "ReLU": (am.ReLU, None),
    "Tanh": (am.Tanh, Bad(lambda: am.Tanh(beta=0.0), "beta")),
    "Sigmoid": (am.Sigmoid, Bad(lambda: am.Sigmoid(beta=-1.0), "beta")),
    "Exp": (am.Exp, Bad(lambda: am.Exp(beta=INF), "beta")),
    "Polynomial": (lambda: am.Polynomial(2), Bad(lambda: am.Polynomial(0), "n")),
    "RePU": (lambda: am.RePU(3), Bad(lambda: am.RePU(0.5), "n")),
    "Additive": (lambda: am.Additive(torch.sin), Bad(lambda: am.Additive(3), "F")),
    "LayerNorm": (am.LayerNorm, Bad(lambda: am.LayerNorm(gamma=NAN), "gamma")),
    "LogSumExp": (am.LogSumExp, Bad(lambda: am.LogSumExp(beta=0.0), "beta")),
    "Sparsemax": (am.Sparsemax, Bad(lambda: am.Sparsemax(beta=-1.0), "beta")),
    "Entmax15": (am.Entmax15, Bad(lambda: am.Entmax15(beta=NAN), "beta")),
    "Spherical": (am.Spherical, None),
}
for cls, (make, option) in LAGRANGIANS.items():
    FLOOR[cls] = {
        **dict.fromkeys(("nan", "inf", "last_dim", "rank", "empty", "dtype", "meta"), NO_VALUES),
        "option": option or "no options",
    }
    for method in ("forward", "activation"):
        who = f"{cls}.{method}"

        def call(x, make=make, method=method):
            return getattr(make(), method)(x)

        FLOOR[who] = {
            "nan": Result(lambda call=call: call(poke(torch.randn(2, 3), NAN)), nan_out, "NaN in, NaN out"),
            "inf": Result(
                lambda call=call: call(poke(torch.randn(2, 3), INF)),
                lambda out: out.shape[0] == 2,
                "the map's value at infinity, as torch's (tanh(inf) = 1, exp(inf) = inf)",
            ),
            "last_dim": "any width",
            "rank": Bad(lambda call=call: call(torch.randn(3)), "x"),
            "empty": Result(
                lambda call=call: call(torch.randn(0, 3)), lambda out: out.shape[0] == 0, "empty batch"
            ),
            "dtype": Bad(lambda call=call: call(torch.ones(2, 3, dtype=torch.long)), "x"),
            "meta": Result(
                lambda call=call: call(torch.ones(2, 3, device="meta")),
                lambda out: out.is_meta,
                "a map: shapes propagate, as in torch",
            ),
            "option": "no options",
        }


# The network floor: relax, Network.energy / velocity / check are the entry points (they check states, inputs and
# clamps once); the rest are its parts (building blocks below) or options.
def _state_rows(key: str, call: Callable[..., object], empty: Result) -> None:
    FLOOR[key] = {
        "nan": Bad(lambda: call(state(poke(Q, NAN))), r"state\['v'\]"),
        "inf": Bad(lambda: call(state(Q, poke(torch.zeros(3, 12), INF))), r"state\['h'\]"),
        "last_dim": Bad(lambda: call(state(Q[:, :3])), r"state\['v'\]"),
        "rank": Bad(lambda: call(state(Q[0], torch.zeros(12))), r"state\['v'\]"),
        "empty": empty,
        "dtype": Bad(lambda: call(state(Q.double(), torch.zeros(3, 12, dtype=torch.float64))), "state"),
        "meta": Bad(lambda: call(state(meta(Q), meta(torch.zeros(3, 12)))), r"state\['v'\]"),
        "option": Bad(lambda: call(state(Q), inputs={"v": torch.zeros(5)}), r"inputs\['v'\]"),
    }


_state_rows("Network.energy", lambda s, **kw: net().energy(s, **kw), Result(
    lambda: net().energy(state(Q[:0])), is_empty_of((0,)), "no sample, no energy"))  # fmt: skip
_state_rows("Network.forward", lambda s, **kw: net()(s, **kw), Result(
    lambda: net()(state(Q[:0])), is_empty_of((0,)), "no sample, no energy"))  # fmt: skip
_state_rows("Network.velocity", lambda s, **kw: net().velocity(s, **kw), Result(
    lambda: net().velocity(state(Q[:0]))["v"], is_empty_of((0, 4)), "no sample"))  # fmt: skip
_state_rows("Network.energy_terms", lambda s, **kw: net().energy_terms(s, **kw), Result(
    lambda: net().energy_terms(state(Q[:0])), lambda out: all(v.shape == (0,) for v in out.values()),
    "no sample, no energy"))  # fmt: skip
_state_rows("Network.check", lambda s, **kw: net().check(s, **kw), Result(
    lambda: net().check(state(Q[:0])), lambda out: out == ({}, {}), "nothing to check"))  # fmt: skip

FLOOR["Network"] = {
    **dict.fromkeys(
        ("nan", "inf", "last_dim", "rank", "empty", "dtype", "meta"), "takes layers and synapses"
    ),
    "option": Bad(lambda: am.Network({}), "layers"),
}
FLOOR["Network.zero_state"] = {
    **dict.fromkeys(("nan", "inf", "last_dim", "rank", "empty", "dtype", "meta"), NO_VALUES),
    "option": Bad(lambda: net().zero_state(-1), "batch_size"),
}
FLOOR["Network.integrate_out"] = {
    **dict.fromkeys(("nan", "inf", "last_dim", "rank", "empty", "dtype", "meta"), NO_VALUES),
    "option": Bad(lambda: am.Network({"v": am.Layer(4, am.Identity())}).integrate_out("v"), "only layer"),
}
FLOOR["Layer"] = {
    **dict.fromkeys(
        ("nan", "inf", "last_dim", "rank", "empty", "dtype", "meta"), "takes a shape and a Lagrangian"
    ),
    "option": Bad(lambda: am.Layer(4, am.Tanh(), tau=0.0), "tau"),
}
W = torch.randn(12, 4)
FLOOR["DenseSynapse"] = {
    "nan": Bad(lambda: am.DenseSynapse("v", "h", poke(W, NAN)), "weight"),
    "inf": Bad(lambda: am.DenseSynapse("v", "h", poke(W, INF)), "weight"),
    "last_dim": Bad(
        lambda: am.Network(
            {"v": am.Layer(4, am.Identity()), "h": am.Layer(12, am.Tanh())},
            [am.DenseSynapse("v", "h", W[:, :3])],
        ),
        "weight",
    ),
    "rank": Bad(lambda: am.DenseSynapse("v", "h", W[0]), "weight"),
    "empty": Bad(lambda: am.DenseSynapse("v", "h", W[:0]), "weight"),
    "dtype": Bad(lambda: am.DenseSynapse("v", "h", W.long()), "weight"),
    "meta": Bad(lambda: am.DenseSynapse("v", "h", meta(W)), "weight"),
    "option": Bad(lambda: am.DenseSynapse("", "h", W), "pre"),
}
K3 = torch.randn(2, 1, 3, 3)
FLOOR["ConvSynapse"] = {
    "nan": Bad(lambda: am.ConvSynapse("a", "b", poke(K3, NAN)), "weight"),
    "inf": Bad(lambda: am.ConvSynapse("a", "b", poke(K3, INF)), "weight"),
    "last_dim": "the layers' shapes are checked when the network binds the synapse",
    "rank": Bad(lambda: am.ConvSynapse("a", "b", K3[0, 0]), "weight"),
    "empty": Bad(lambda: am.ConvSynapse("a", "b", K3[:0]), "weight"),
    "dtype": Bad(lambda: am.ConvSynapse("a", "b", K3.long()), "weight"),
    "meta": Bad(lambda: am.ConvSynapse("a", "b", meta(K3)), "weight"),
    "option": Bad(lambda: am.ConvSynapse("a", "b", K3, stride=0), "stride"),
}
for cls, bad in (("FunctionTerm", Bad(lambda: am.FunctionTerm(3, "v"), "fn")),):
    FLOOR[cls] = {**dict.fromkeys(("nan", "inf", "last_dim", "rank", "empty", "dtype", "meta"), NO_VALUES),
                  "option": bad}  # fmt: skip
FLOOR["load_data"] = {
    **dict.fromkeys(("nan", "inf", "last_dim", "rank", "empty", "dtype", "meta"), "takes a data set's name"),
    "option": Bad(lambda: am.classifier.load_data("mnist", train_size=-1), "train_size"),
}
FLOOR["retain_freed_memory"] = {
    **dict.fromkeys(("nan", "inf", "last_dim", "rank", "empty", "dtype", "meta"), NO_VALUES),
    "option": Bad(lambda: am.retain_freed_memory(-1), "trim_threshold"),
}


def _bound(term):
    am.Network({"v": am.Layer(4, am.Identity()), "h": am.Layer(12, am.Tanh())}, [term])
    return term


def _bound_conv():
    term = am.ConvSynapse("v", "h", torch.randn(2, 1, 3))
    am.Network({"v": am.Layer((1, 4), am.Identity()), "h": am.Layer((2, 2), am.Tanh())}, [term])
    return term


def _term_call(term, method: str) -> torch.Tensor:
    conv = isinstance(term, am.ConvSynapse)
    v = torch.full((3, 1, 4) if conv else (3, 4), NAN)
    g = {"v": v, "h": torch.zeros((3, 2, 2) if conv else (3, 12))}
    if isinstance(term, am.ManyBodyTerm):
        g = {"v": v}
    if method == "drive":
        return term.drive(term.post, v)
    out = getattr(term, method)(g)
    if method == "energy_and_forces":
        out = out[0]
    return next(iter(out.values())) if isinstance(out, dict) else out


#: Parts that run inside a checked loop on checked arguments (docs/bad-input.md, "Building blocks"): they keep
#: shape checks where they have them but do not scan values; a NaN in gives a NaN out (checked below).
BUILDING_BLOCKS: dict[str, Callable[[], object]] = {
    "Network.evaluate": lambda: (
        net().evaluate(state(torch.full((3, 4), NAN)), {}, {}, need_energy=True).energy
    ),
    "Network.activations": lambda: net().activations(state(torch.full((3, 4), NAN)))["v"],
    "Layer.activation": lambda: am.Layer(3, am.Tanh()).activation(torch.full((2, 3), NAN)),
    "Layer.legendre": lambda: am.Layer(3, am.Tanh()).legendre(torch.full((2, 3), NAN), torch.zeros(2, 3)),
    "Evaluation.delta": lambda: net().evaluate(state(torch.full((3, 4), NAN)), {}, {}).delta()["v"],
    "Evaluation.velocity": lambda: (
        net().evaluate(state(torch.full((3, 4), NAN)), {}, {}).velocity(net().tau)["v"]
    ),
    "Evaluation.delta_of": lambda: net().evaluate(state(torch.full((3, 4), NAN)), {}, {}).delta_of("v"),
    "Evaluation.euler": lambda: net().evaluate(state(torch.full((3, 4), NAN)), {}, {}).euler("v", 0.5),
    "DAMClassifier.scaled_inputs": lambda: classifier().scaled_inputs(torch.full((2, 784), NAN))[0],
    "hessian_vector": lambda: am.lagrangians.hessian_vector(
        am.Tanh(), torch.full((2, 3), NAN), torch.ones(2, 3)
    ),
}
TERMS = {
    "DenseSynapse": lambda: _bound(am.DenseSynapse("v", "h", W)),
    "ConvSynapse": lambda: _bound_conv(),
    "Synapse": lambda: _bound(am.DenseSynapse("v", "h", W)),
    "FunctionTerm": lambda: am.FunctionTerm(lambda g: (g["v"] ** 2).sum(1), "v"),
    "EnergyTerm": lambda: am.FunctionTerm(lambda g: (g["v"] ** 2).sum(1), "v"),
    "ManyBodyTerm": lambda: model_b(M, reduced=True).synapses[0],
}
for cls, make in TERMS.items():
    for method in ("energy", "forces", "energy_and_forces", "potential", "drive"):
        if hasattr(make(), method):
            BUILDING_BLOCKS[f"{cls}.{method}"] = lambda make=make, method=method: _term_call(make(), method)
for cls, (make, _) in LAGRANGIANS.items():
    if isinstance(make(), AdditiveLagrangian):
        for method in ("F", "dF"):
            BUILDING_BLOCKS[f"{cls}.{method}"] = lambda make=make, method=method: getattr(make(), method)(
                poke(torch.randn(2, 3), NAN)
            )

# Issue 13's terms: average pooling, attention and a Hopfield memory over tokens, the plan, the spectral norm.
KQ = torch.randn(2, 3, 4)  # heads, width, token width
XI4 = torch.randn(6, 4)


def _tokens(*terms):
    am.Network({"t": am.Layer((5, 4), am.LayerNorm(dim=-1))}, list(terms))
    return terms[0]


def _pool():
    return _bound_pool(am.AvgPoolSynapse("a", "b", 2))


def _bound_pool(term):
    am.Network({"a": am.Layer((2, 4, 4), am.Identity()), "b": am.Layer((2, 2, 2), am.ReLU())}, [term])
    return term


def _nan_tokens():
    return {"t": poke(torch.randn(3, 5, 4), NAN)}


FLOOR["AttentionTerm"] = {
    "nan": Bad(lambda: am.AttentionTerm("t", poke(KQ, NAN), KQ), "key_weight"),
    "inf": Bad(lambda: am.AttentionTerm("t", KQ, poke(KQ, INF)), "query_weight"),
    "last_dim": Bad(
        lambda: am.Network({"t": am.Layer((5, 3), am.LayerNorm(dim=-1))}, [am.AttentionTerm("t", KQ, KQ)]),
        r"\(tokens, 4\)",
    ),
    "rank": Bad(lambda: am.AttentionTerm("t", KQ[0], KQ[0]), "key_weight"),
    "empty": Bad(lambda: am.AttentionTerm("t", KQ[:0], KQ[:0]), "key_weight"),
    "dtype": Bad(lambda: am.AttentionTerm("t", KQ.long(), KQ), "key_weight"),
    "meta": Bad(lambda: am.AttentionTerm("t", meta(KQ), KQ), "key_weight"),
    "option": Bad(lambda: am.AttentionTerm("t", KQ, KQ, beta=0.0), "beta"),
}
FLOOR["AttentionTerm.set_mask"] = {
    "nan": "a bool mask holds no NaN",
    "inf": "a bool mask holds no Inf",
    "last_dim": Bad(
        lambda: _tokens(am.AttentionTerm("t", KQ, KQ)).set_mask(torch.ones(4, dtype=torch.bool)), "mask"
    ),
    "rank": Bad(
        lambda: _tokens(am.AttentionTerm("t", KQ, KQ)).set_mask(torch.ones(1, 3, 5, dtype=torch.bool)), "mask"
    ),
    "empty": Bad(
        lambda: _tokens(am.AttentionTerm("t", KQ, KQ)).set_mask(torch.ones(0, dtype=torch.bool)), "mask"
    ),
    "dtype": Bad(lambda: _tokens(am.AttentionTerm("t", KQ, KQ)).set_mask(torch.ones(5)), "mask"),
    "meta": Bad(
        lambda: _tokens(am.AttentionTerm("t", KQ, KQ)).set_mask(
            torch.ones(5, dtype=torch.bool, device="meta")
        ),
        "mask",
    ),
    "option": Bad(lambda: _tokens(am.AttentionTerm("t", KQ, KQ)).set_mask("all"), "mask"),
}
FLOOR["HopfieldTerm"] = {
    "nan": Bad(lambda: am.HopfieldTerm("t", poke(XI4, NAN)), "xi"),
    "inf": Bad(lambda: am.HopfieldTerm("t", poke(XI4, INF)), "xi"),
    "last_dim": Bad(
        lambda: am.Network({"t": am.Layer((5, 3), am.LayerNorm(dim=-1))}, [am.HopfieldTerm("t", XI4)]),
        r"\(tokens, 4\)",
    ),
    "rank": Bad(lambda: am.HopfieldTerm("t", XI4[0]), "xi"),
    "empty": Bad(lambda: am.HopfieldTerm("t", XI4[:0]), "xi"),
    "dtype": Bad(lambda: am.HopfieldTerm("t", XI4.long()), "xi"),
    "meta": Bad(lambda: am.HopfieldTerm("t", meta(XI4)), "xi"),
    "option": Bad(lambda: am.HopfieldTerm("t", XI4, "relu"), "lagrangian"),
}
FLOOR["AvgPoolSynapse"] = {
    **dict.fromkeys(("nan", "inf", "rank", "empty", "dtype", "meta"), "takes layer names and window sizes"),
    "last_dim": Bad(
        lambda: am.Network(
            {"a": am.Layer((2, 4, 4), am.Identity()), "b": am.Layer((2, 3, 3), am.ReLU())},
            [am.AvgPoolSynapse("a", "b", 2)],
        ),
        "produces",
    ),
    "option": Bad(lambda: am.AvgPoolSynapse("a", "b", 0), "kernel_size"),
}
FLOOR["spectral_norm"] = {
    **dict.fromkeys(
        ("nan", "inf", "last_dim", "rank", "empty", "dtype", "meta"),
        "takes a synapse, whose weights were checked when it was made",
    ),
    "option": Bad(lambda: am.spectral_norm(_pool(), iterations=0), "iterations"),
}
BUILDING_BLOCKS.update(
    {
        "AttentionTerm.energy": lambda: _tokens(am.AttentionTerm("t", KQ, KQ)).energy(_nan_tokens()),
        "AttentionTerm.forces": lambda: _tokens(am.AttentionTerm("t", KQ, KQ)).forces(_nan_tokens())["t"],
        "AttentionTerm.energy_and_forces": lambda: _tokens(am.AttentionTerm("t", KQ, KQ)).energy_and_forces(
            _nan_tokens()
        )[0],
        "HopfieldTerm.energy": lambda: _tokens(am.HopfieldTerm("t", XI4)).energy(_nan_tokens()),
        "HopfieldTerm.forces": lambda: _tokens(am.HopfieldTerm("t", XI4)).forces(_nan_tokens())["t"],
        "HopfieldTerm.energy_and_forces": lambda: _tokens(am.HopfieldTerm("t", XI4)).energy_and_forces(
            _nan_tokens()
        )[0],
        "HopfieldTerm.potential": lambda: _tokens(am.HopfieldTerm("t", XI4)).potential(_nan_tokens()),
        "AvgPoolSynapse.drive": lambda: _pool().drive("b", poke(torch.randn(3, 2, 4, 4), NAN)),
        "AvgPoolSynapse.energy": lambda: _pool().energy(
            {"a": poke(torch.randn(3, 2, 4, 4), NAN), "b": torch.zeros(3, 2, 2, 2)}
        ),
        "AvgPoolSynapse.forces": lambda: _pool().forces(
            {"a": poke(torch.randn(3, 2, 4, 4), NAN), "b": torch.zeros(3, 2, 2, 2)}
        )["b"],
        "AvgPoolSynapse.energy_and_forces": lambda: _pool().energy_and_forces(
            {"a": poke(torch.randn(3, 2, 4, 4), NAN), "b": torch.zeros(3, 2, 2, 2)}
        )[0],
        "ManyBodyTerm.respond": lambda: (
            model_b(M, reduced=True).synapses[0].respond(poke(torch.randn(3, 12), NAN))[0]
        ),
        "Network.prepare": lambda: net().prepare(state(torch.full((3, 4), NAN)), {}, {"v": True}).g["v"],
        "Plan.constant_energy": lambda: (
            net().prepare(state(torch.full((3, 4), NAN)), {}, {"v": True}).constant_energy()
        ),
    }
)
