"""Rows of the bad-input table (tests/test_bad_input.py) for the biological key-value memory (assocmem.keyvalue):
the memory and its state, the plasticity rule, the network preset and meta-learning."""

from __future__ import annotations

import math

import torch

from assocmem.keyvalue import (
    KeyValueMemory,
    Max,
    MemoryState,
    PlasticityRule,
    Step,
    key_value_network,
    meta_learn,
    random_factor,
    readout_lagrangian,
    sequential_factor,
    update_angles,
)
from assocmem.lagrangians import LogSumExp
from tests.bad_input_cases import INF, NAN, NO_VALUES, Bad, Result, is_empty_of, meta, nan_out, poke

B, T, L, D, N, V = 2, 5, 3, 4, 6, 3  # memories, items stored, queries, key width, slots, value width
G = torch.Generator().manual_seed(0)
KS, VS, QS = (
    torch.randn(B, T, D, generator=G),
    torch.randn(B, T, V, generator=G),
    torch.randn(B, L, D, generator=G),
)
KEYS, HIDDEN_KEYS = torch.randn(N, D, generator=G), torch.randn(B, N, D, generator=G)  # (N, d) and (B, N, d)
VALUES = torch.randn(V, N, generator=G)


def kv(**kw: object) -> KeyValueMemory:
    return KeyValueMemory(D, N, value_size=V, **kw)


def filled(mem: KeyValueMemory | None = None) -> MemoryState:
    """A state holding ``T`` items per memory."""
    mem = mem or kv()
    return mem.store(mem.init_state(B), KS, VS)


def with_state(keys: torch.Tensor | None = None, values: torch.Tensor | None = None) -> MemoryState:
    s = filled()
    return MemoryState(s.keys if keys is None else keys, s.values if values is None else values, s.steps)


def nan_rule(name: str = "key_rate", value: float = NAN) -> PlasticityRule:
    """A rule one of whose parameters became NaN or Inf (a training run that diverged)."""
    rule = PlasticityRule()
    with torch.no_grad():
        getattr(rule, name).fill_(value)
    return rule


NO_OPTIONS = "no options"
SIZES = "a count and a dtype: no values, the sizes are the memory's"
NUMBERS = "takes numbers, no tensor"

TABLE: dict[str, dict[str, Bad | Result | str]] = {
    "KeyValueMemory": {
        "nan": Bad(lambda: kv(beta=NAN), "beta"),
        "inf": Bad(lambda: kv(readout="step", threshold=INF), "threshold"),
        "last_dim": Bad(lambda: KeyValueMemory(D, N, value_size=0), "value_size"),
        "rank": Bad(lambda: kv(beta=torch.ones(2)), "beta"),
        "empty": Bad(lambda: KeyValueMemory(D, 0), "slots"),
        "dtype": Bad(lambda: KeyValueMemory(4.0, N), "key_size"),
        "meta": Bad(lambda: kv(beta=torch.tensor(1.0, device="meta")), "beta"),
        "option": Bad(lambda: kv(readout="sparsemax"), "readout"),
    },
    "KeyValueMemory.forward": {
        "nan": Bad(lambda: kv()(poke(KS, NAN), QS, VS), "keys"),
        "inf": Bad(lambda: kv(readout="hardmax")(KS, poke(QS, INF), VS), "queries"),
        "last_dim": Bad(lambda: kv()(KS, QS[..., :3], VS), "queries"),
        "rank": Bad(lambda: kv()(KS[0], QS, VS), "keys"),
        "empty": Result(
            lambda: kv()(KS[:0], QS[:0], VS[:0]),
            is_empty_of((0, L, V)),
            "an empty batch of episodes is empty",
        ),
        "dtype": Bad(lambda: kv()(KS, QS, VS.double()), "values"),
        "meta": Bad(lambda: kv()(meta(KS), QS, VS), "keys"),
        "option": Bad(lambda: kv()(KS, QS, VS, gates=-1.0), "gates"),
    },
    "KeyValueMemory.hidden": {
        "nan": Bad(lambda: kv(readout="hardmax").hidden(HIDDEN_KEYS, poke(QS, NAN)), "queries"),
        "inf": Bad(lambda: kv(readout="step").hidden(poke(HIDDEN_KEYS, INF), QS), "keys"),
        "last_dim": Bad(lambda: kv().hidden(HIDDEN_KEYS, QS[..., :3]), "queries"),
        "rank": Bad(lambda: kv().hidden(HIDDEN_KEYS[0], QS), "keys"),
        "empty": Result(
            lambda: kv().hidden(HIDDEN_KEYS, QS[:, :0]), is_empty_of((B, 0, N)), "no query: no activity"
        ),
        "dtype": Bad(lambda: kv().hidden(HIDDEN_KEYS, QS.double()), "queries"),
        "meta": Bad(lambda: kv().hidden(meta(HIDDEN_KEYS), QS), "keys"),
        "option": "no options: the read-out is the memory's",
    },
    "KeyValueMemory.init_state": {
        **dict.fromkeys(("nan", "inf", "last_dim", "rank"), SIZES),
        "empty": Result(
            lambda: kv().init_state(0).keys, is_empty_of((0, N, D)), "batch 0: an empty batch of memories"
        ),
        "dtype": Bad(lambda: kv().init_state(B, dtype=torch.int64), "dtype"),
        "meta": Bad(lambda: kv().init_state(B, device="meta"), "device"),
        "option": Bad(lambda: kv().init_state(-1), "batch"),
    },
    "KeyValueMemory.novelty": {
        "nan": Bad(lambda: kv().novelty(filled(), QS[:, 0], poke(VS[:, 0], NAN)), "value"),
        "inf": Bad(lambda: kv().novelty(filled(), poke(QS[:, 0], INF), VS[:, 0]), "key"),
        "last_dim": Bad(lambda: kv().novelty(filled(), QS[:, 0], VS[:, 0, :2]), "value"),
        "rank": Bad(lambda: kv().novelty(filled(), QS[0, 0], VS[:, 0]), "key"),
        "empty": Result(
            lambda: kv().novelty(kv().init_state(0), QS[:0, 0], VS[:0, 0]), is_empty_of((0,)), "empty batch"
        ),
        "dtype": Bad(lambda: kv().novelty(filled(), QS[:, 0].double(), VS[:, 0]), "key"),
        "meta": Bad(lambda: kv().novelty(filled(), meta(QS[:, 0]), VS[:, 0]), "key"),
        "option": NO_OPTIONS,
    },
    "KeyValueMemory.read": {
        # a NaN key read by the hard max would pick a slot like any other: the scores are checked, not only the result
        "nan": Bad(
            lambda: kv(readout="hardmax").read(with_state(keys=poke(filled().keys, NAN)), QS), r"state\.keys"
        ),
        "inf": Bad(lambda: kv().read(filled(), poke(QS, INF)), "queries"),
        "last_dim": Bad(lambda: kv().read(filled(), QS[..., :3]), "queries"),
        "rank": Bad(lambda: kv().read(filled(), QS[None]), "queries"),
        "empty": Result(lambda: kv().read(filled(), QS[:, :0]), is_empty_of((B, 0, V)), "no query: empty"),
        "dtype": Bad(lambda: kv().read(filled(), QS.double()), "queries"),
        "meta": Bad(lambda: kv().read(filled(), meta(QS)), "queries"),
        "option": NO_OPTIONS,
    },
    "KeyValueMemory.store": {
        "nan": Bad(lambda: kv().store(kv().init_state(B), poke(KS, NAN), VS), "keys"),
        "inf": Bad(
            lambda: kv().store(kv().init_state(B), KS, VS, gates=poke(torch.ones(B, T), INF)), "gates"
        ),
        "last_dim": Bad(lambda: kv().store(kv().init_state(B), KS, VS[..., :2]), "values"),
        "rank": Bad(lambda: kv().store(kv().init_state(B), KS[:, 0], VS), "keys"),
        "empty": Result(
            lambda: kv().store(kv().init_state(B), KS[:, :0], VS[:, :0]),
            lambda s: int(s.steps.sum()) == 0 and not bool(s.keys.any()),
            "no item: the state is unchanged",
        ),
        "dtype": Bad(lambda: kv().store(kv().init_state(B), KS.double(), VS), "keys"),
        "meta": Bad(lambda: kv(rule=PlasticityRule().to("meta")).store(kv().init_state(B), KS, VS), "rule"),
        "option": Bad(
            lambda: kv().store(kv().init_state(B), KS, VS, gates=torch.full((B, T), -1.0)), "gates"
        ),
    },
    "KeyValueMemory.write": {
        "nan": Bad(lambda: kv().write(filled(), poke(KS[:, 0], NAN), VS[:, 0]), "key"),
        "inf": Bad(lambda: kv().write(filled(), KS[:, 0], poke(VS[:, 0], -INF)), "value"),
        "last_dim": Bad(lambda: kv().write(filled(), KS[:, 0, :3], VS[:, 0]), "key"),
        "rank": Bad(lambda: kv().write(filled(), KS[None, :, 0], VS[:, 0]), "key"),
        "empty": Result(
            lambda: kv().write(kv().init_state(0), KS[:0, 0], VS[:0, 0]).values,
            is_empty_of((0, V, N)),
            "empty batch",
        ),
        "dtype": Bad(lambda: kv().write(filled(), KS[:, 0].long(), VS[:, 0]), "key"),
        "meta": Bad(lambda: kv().write(filled(), KS[:, 0], meta(VS[:, 0])), "value"),
        "option": Bad(lambda: kv().write(filled(), KS[:, 0], VS[:, 0], gate=-1.0), "gate"),
    },
    "MemoryState": {
        # a state's values are not scanned where it is made (each write makes one): reading it is refused
        "nan": Bad(lambda: kv().read(with_state(keys=poke(filled().keys, NAN)), QS), r"state\.keys"),
        "inf": Bad(lambda: kv().read(with_state(values=poke(filled().values, INF)), QS), r"state\.values"),
        "last_dim": Bad(lambda: with_state(values=filled().values[..., :5]), "values"),
        "rank": Bad(lambda: with_state(keys=filled().keys[0]), "keys"),
        "empty": Bad(
            lambda: MemoryState(torch.zeros(B, 0, D), torch.zeros(B, V, 0), torch.zeros(B).long()), "keys"
        ),
        "dtype": Bad(lambda: MemoryState(filled().keys, filled().values, torch.zeros(B)), "steps"),
        "meta": Bad(lambda: with_state(keys=meta(filled().keys)), "keys"),
        "option": NO_OPTIONS,
    },
    "PlasticityRule": {
        "nan": Bad(lambda: PlasticityRule(key_pre=(1.0, NAN)), "key_pre"),
        "inf": Bad(lambda: PlasticityRule(key_rate=INF), "key_rate"),
        "last_dim": Bad(lambda: PlasticityRule(value_post=(1.0, 0.0, 0.0)), "value_post"),
        "rank": Bad(lambda: PlasticityRule(key_post=[[0.0, 1.0]]), "key_post"),
        "empty": Bad(lambda: PlasticityRule(value_pre=()), "value_pre"),
        "dtype": Bad(lambda: PlasticityRule(value_rate=True), "value_rate"),
        "meta": Bad(lambda: PlasticityRule(key_pre=torch.ones(2, device="meta")), "key_pre"),
        "option": Bad(lambda: PlasticityRule(value_decay=1.5), "value_decay"),
    },
    "PlasticityRule.as_dict": {
        "nan": Result(
            lambda: nan_rule().as_dict(), lambda d: math.isnan(d["key_rate"]), "a record: NaN reads NaN"
        ),
        **dict.fromkeys(("inf", "last_dim", "rank", "empty", "dtype", "meta", "option"), "no input"),
    },
    "PlasticityRule.coefficients": {
        "nan": Result(lambda: nan_rule().coefficients("key"), nan_out, "a building block: NaN in, NaN out"),
        **dict.fromkeys(("inf", "last_dim", "rank", "empty", "dtype", "meta"), "takes a synapse's name"),
        "option": Bad(lambda: PlasticityRule().coefficients("hidden"), "synapse"),
    },
    "PlasticityRule.distance": {
        # NaN would otherwise read as 0 degrees (min(1, nan) is 1): the designed rule itself
        "nan": Bad(lambda: nan_rule().distance(), "key_rate"),
        "inf": Bad(lambda: nan_rule("value_post", INF).distance(), "value_post"),
        **dict.fromkeys(("last_dim", "rank", "empty", "dtype", "meta", "option"), "no input"),
    },
    "PlasticityRule.uniform": {
        "nan": Bad(lambda: PlasticityRule.uniform(NAN), "value"),
        "inf": Bad(lambda: PlasticityRule.uniform(0.1, rate=INF), "rate"),
        "last_dim": NUMBERS,
        "rank": Bad(lambda: PlasticityRule.uniform(torch.ones(2)), "value"),
        "empty": NUMBERS,
        "dtype": Bad(lambda: PlasticityRule.uniform(True), "value"),
        "meta": Bad(lambda: PlasticityRule.uniform(torch.tensor(0.1, device="meta")), "value"),
        "option": Bad(lambda: PlasticityRule.uniform(0.1, decay=2.0), "decay"),
    },
    "key_value_network": {
        "nan": Bad(lambda: key_value_network(poke(KEYS, NAN), VALUES, LogSumExp(1.0)), "keys"),
        "inf": Bad(lambda: key_value_network(KEYS, poke(VALUES, INF), LogSumExp(1.0)), "values"),
        "last_dim": Bad(lambda: key_value_network(KEYS, VALUES[:, :5], LogSumExp(1.0)), "values"),
        "rank": Bad(lambda: key_value_network(KEYS[None], VALUES, LogSumExp(1.0)), "keys"),
        "empty": Bad(lambda: key_value_network(KEYS[:, :0], VALUES, LogSumExp(1.0)), "keys"),
        "dtype": Bad(lambda: key_value_network(KEYS, VALUES.double(), LogSumExp(1.0)), "values"),
        "meta": Bad(lambda: key_value_network(meta(KEYS), VALUES, LogSumExp(1.0)), "keys"),
        "option": Bad(lambda: key_value_network(KEYS, VALUES, LogSumExp(1.0), tau_hidden=-1.0), "tau_hidden"),
    },
    "meta_learn": {
        "nan": Bad(lambda: meta_learn(KeyValueMemory(D, D, rule=nan_rule()), steps=1), "key_rate"),
        "inf": Bad(lambda: meta_learn(KeyValueMemory(D, D), steps=1, lr=INF), "lr"),
        "last_dim": Bad(lambda: meta_learn(KeyValueMemory(D, D), steps=1, lengths=(1, 2, 3)), "lengths"),
        "rank": NO_VALUES,
        "empty": Bad(lambda: meta_learn(KeyValueMemory(D, D), steps=1, lengths=(0, 2)), "lengths"),
        "dtype": Bad(lambda: meta_learn(KeyValueMemory(D, D), steps=2.0), "steps"),
        "meta": Bad(lambda: meta_learn(KeyValueMemory(D, D).to("meta"), steps=1), "rule"),
        "option": Bad(lambda: meta_learn(KeyValueMemory(D, D), steps=1, fraction=1.5), "fraction"),
    },
}

STEPS = torch.arange(B)  # the time steps each memory has seen
TABLE.update(
    {
        "Max": {
            **dict.fromkeys(("nan", "inf", "last_dim", "rank", "empty", "dtype", "meta"), NO_VALUES),
            "option": NO_OPTIONS,
        },
        "Step": {
            "nan": Bad(lambda: Step(NAN), "threshold"),
            "inf": Bad(lambda: Step(INF), "threshold"),
            **dict.fromkeys(("last_dim", "rank", "empty"), NO_VALUES),
            "dtype": Bad(lambda: Step("high"), "threshold"),
            "meta": Bad(lambda: Step(torch.tensor(0.0, device="meta")), "threshold"),
            "option": Bad(lambda: Step(torch.ones(2)), "threshold"),
        },
        "readout_lagrangian": {
            "nan": Bad(lambda: readout_lagrangian("softmax", beta=NAN), "beta"),
            "inf": Bad(lambda: readout_lagrangian("step", threshold=INF), "threshold"),
            "last_dim": NO_VALUES,
            "rank": Bad(lambda: readout_lagrangian("softmax", beta=torch.ones(2)), "beta"),
            "empty": Bad(lambda: readout_lagrangian(""), "readout"),
            "dtype": Bad(lambda: readout_lagrangian(3), "readout"),
            "meta": Bad(lambda: readout_lagrangian("softmax", beta=torch.tensor(1.0, device="meta")), "beta"),
            "option": Bad(lambda: readout_lagrangian("sparsemax"), "readout"),
        },
        "sequential_factor": {
            "nan": "integer steps hold no NaN; like gives only a dtype and a device",
            "inf": "as nan",
            "last_dim": Bad(lambda: sequential_factor(STEPS, 0, KEYS), "slots"),
            "rank": Bad(lambda: sequential_factor(STEPS[:, None], N, KEYS), "steps"),
            "empty": Result(
                lambda: sequential_factor(STEPS[:0], N, KEYS), is_empty_of((0, N)), "no memory, no row"
            ),
            "dtype": Bad(lambda: sequential_factor(STEPS.float(), N, KEYS), "steps"),
            "meta": Bad(lambda: sequential_factor(STEPS, N, meta(KEYS)), "like"),
            "option": Bad(lambda: sequential_factor(STEPS, 2.5, KEYS), "slots"),
        },
        "random_factor": {
            "nan": Bad(lambda: random_factor(B, N, NAN, KEYS), r"\bp\b"),
            "inf": Bad(lambda: random_factor(B, N, INF, KEYS), r"\bp\b"),
            "last_dim": Bad(lambda: random_factor(B, 0, 0.5, KEYS), "slots"),
            "rank": Bad(lambda: random_factor(B, N, torch.full((2,), 0.5), KEYS), r"\bp\b"),
            "empty": Result(lambda: random_factor(0, N, 0.5, KEYS), is_empty_of((0, N)), "no memory, no row"),
            "dtype": Bad(lambda: random_factor(B, N, 0.5, torch.ones(2, dtype=torch.long)), "like"),
            "meta": Bad(lambda: random_factor(B, N, 0.5, meta(KEYS)), "like"),
            "option": Bad(lambda: random_factor(-1, N, 0.5, KEYS), "batch"),
        },
        "update_angles": {
            "nan": Bad(lambda: update_angles(kv(), poke(KS, NAN, 3)), "patterns"),
            "inf": Bad(lambda: update_angles(kv(), poke(KS, -INF)), "patterns"),
            "last_dim": Bad(lambda: update_angles(kv(), KS[..., :3]), "patterns"),
            "rank": Bad(lambda: update_angles(kv(), KS[0]), "patterns"),
            "empty": Bad(lambda: update_angles(kv(), KS[:, :0]), "patterns"),
            "dtype": Bad(lambda: update_angles(kv(), KS.long()), "patterns"),
            "meta": Bad(lambda: update_angles(kv(), meta(KS)), "patterns"),
            "option": Bad(lambda: update_angles("memory", KS), "memory"),
        },
    }
)

#: The read-outs' Lagrangians are building blocks (docs/bad-input.md): NaN in, NaN out, even for the one-hot and
#: the step, whose plain forms (argmax, a comparison) would turn a NaN into an ordinary-looking activity.
BUILDING_BLOCKS = {
    **{
        f"{cls.__name__}.{method}": lambda cls=cls, method=method: getattr(cls(), method)(
            poke(torch.randn(2, 3), NAN)
        )
        for cls in (Max, Step)
        for method in ("forward", "activation")
    },
    **{f"Step.{m}": lambda m=m: getattr(Step(0.5), m)(poke(torch.randn(2, 3), NAN, 4)) for m in ("F", "dF")},
}
