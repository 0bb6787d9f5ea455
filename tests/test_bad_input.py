"""Every public entry point against a table of bad inputs (docs/bad-input.md).

The test walks the public API (``__all__`` of ``assocmem`` and of its packages ``nn``, ``nn.functional``,
``engines``, ``engines.bank``, ``models``, ``lagrangians``, ``network``, ``dynamics``, ``classifier``, ``laboratory``,
``keyvalue``, ``ham``): every function and class, and every public method a class defines in assocmem. Each must be in
:data:`TABLE`, where it has a cell for every kind of bad input in :data:`KINDS`, or in one of the explained lists
(:data:`NO_TENSOR_INPUT`, :data:`BUILDING_BLOCKS`). A new function that is in none of them fails
``test_every_public_entry_point_is_in_the_table``.

Entry points are keyed by module and qualified name (``assocmem.ham.run.train``), so two public names that share
a qualified name (``ham.train`` and ``classifier.train``) are two entries. A row names its entry point by the
qualified name alone (``HAMClassifier.settle``) when no other entry point has it, and in full otherwise.

A cell is a :class:`Bad` call (it must raise ``TypeError`` or ``ValueError`` whose message matches ``names``: the
argument), a :class:`Result` (a documented answer, checked), or a string saying why the kind does not apply.
"""

from __future__ import annotations

import importlib
import inspect
import re
import types

import pytest

import assocmem as am
from assocmem import checks
from tests.bad_input_bank import NO_TENSOR_INPUT as BANK_RESULTS
from tests.bad_input_bank import TABLE as BANK
from tests.bad_input_cases import KINDS, NAN, Bad, M, Q, Result, X, layer, nan_out, net, poke, state
from tests.bad_input_dynamics import OPTIONS
from tests.bad_input_dynamics import TABLE as DYNAMICS
from tests.bad_input_floor import BUILDING_BLOCKS, FLOOR
from tests.bad_input_ham import NO_TENSOR_INPUT as HAM_NO_TENSOR_INPUT
from tests.bad_input_ham import TABLE as HAM
from tests.bad_input_keyvalue import BUILDING_BLOCKS as KEYVALUE_BLOCKS
from tests.bad_input_keyvalue import TABLE as KEYVALUE
from tests.bad_input_repertoire import NO_TENSOR_INPUT as REPERTOIRE_NO_TENSOR
from tests.bad_input_repertoire import TABLE as REPERTOIRE
from tests.bad_input_repertoire_explain import NO_TENSOR_INPUT as EXPLAIN_NO_TENSOR
from tests.bad_input_repertoire_explain import TABLE as EXPLAIN
from tests.bad_input_repertoire_model import NO_TENSOR_INPUT as REPERTOIRE_MODEL_NO_TENSOR
from tests.bad_input_repertoire_model import TABLE as REPERTOIRE_MODEL
from tests.bad_input_rows import TABLE as ROWS
from tests.bad_input_sharded import NO_TENSOR_INPUT as SHARDED_NO_TENSOR
from tests.bad_input_sharded import OPTIONS as SHARDED_OPTIONS
from tests.bad_input_sharded import TABLE as SHARDED
from tests.bad_input_training import OPTIONS as TRAINING_OPTIONS
from tests.bad_input_training import TABLE as TRAINING

#: Every entry point with a cell for every kind of bad input.
TABLE = {
    **ROWS,
    **FLOOR,
    **KEYVALUE,
    **DYNAMICS,
    **TRAINING,
    **BANK,
    **SHARDED,
    **HAM,
    **REPERTOIRE,
    **REPERTOIRE_MODEL,
}
TABLE |= EXPLAIN
BUILDING_BLOCKS = {**BUILDING_BLOCKS, **KEYVALUE_BLOCKS}
OPTIONS = {**OPTIONS, **TRAINING_OPTIONS, **SHARDED_OPTIONS}

PACKAGES = (
    "assocmem",
    "assocmem.nn",
    "assocmem.nn.functional",
    "assocmem.engines",
    "assocmem.engines.bank",
    "assocmem.models",
    "assocmem.lagrangians",
    "assocmem.network",
    "assocmem.dynamics",
    "assocmem.classifier",
    "assocmem.laboratory",
    "assocmem.keyvalue",
    "assocmem.engines.bank",
    "assocmem.ham",
    "assocmem.repertoire",
)
#: Public callables that take no tensor: results (data classes the loops return), configuration, the abstract bases.
NO_TENSOR_INPUT: dict[str, str] = {
    **{
        k: "a result: holds tensors, takes none"
        for k in (
            "FixedPoint",
            "Trajectory",
            "Recall",
            "Retrieval",
            "Association",
            "Evaluation",
            "Votes",
            "Data",
            "Boundedness",
        )
    },
    **{k: "an exception: holds a message" for k in ("ConvergenceError", "DivergenceError")},
    **{f"Votes.{m}": "a summary of a result" for m in ("histogram", "summary")},
    "Lagrangian": "abstract base (its subclasses are rows)",
    **{
        f"{c}.{m}": "abstract"
        for c, m in [
            ("Lagrangian", "forward"),
            ("Lagrangian", "activation"),
            ("AdditiveLagrangian", "forward"),
            ("AdditiveLagrangian", "activation"),
            ("AdditiveLagrangian", "F"),
            ("AdditiveLagrangian", "dF"),
        ]
    },
    "AdditiveLagrangian": "abstract base (its subclasses are rows)",
    "EnergyTerm": "abstract base (FunctionTerm, the synapses and ManyBodyTerm are rows)",
    "Synapse": "abstract base (DenseSynapse and ConvSynapse are rows)",
    "ManyBodyTerm": "made by Network.integrate_out (a row)",
    "Plan": "made by Network.prepare (a building block)",
    "Evaluation.spend": "no input: lets the evaluation reuse its own memory",
    "DAMClassifier.to_feedforward": "no input",
    "TrainConfig.to_dict": "no input",
    "MetaLearning": "a result: holds the memory and its record, takes no tensor",
    **BANK_RESULTS,
    **SHARDED_NO_TENSOR,
    **HAM_NO_TENSOR_INPUT,
    **REPERTOIRE_NO_TENSOR,
    **REPERTOIRE_MODEL_NO_TENSOR,
    **EXPLAIN_NO_TENSOR,
}
#: Generic methods that take no tensor, whatever the class.
NO_TENSOR_METHODS = {"extra_repr", "reset_parameters", "bind", "of", "other", "input_shapes", "output_shape"}


# ------------------------------------------------------------------------------------------------ the walk
def walk() -> dict[tuple[str, str], object]:
    """Every public function and class of :data:`PACKAGES`, and every public method a class defines in assocmem,
    keyed by (module, qualified name): a method by its class's."""
    found: dict[tuple[str, str], object] = {}
    for package in PACKAGES:
        module = importlib.import_module(package)
        for name in module.__all__:
            obj = getattr(module, name)
            if isinstance(obj, (types.ModuleType, types.GenericAlias)) or not callable(obj):
                continue
            found[obj.__module__, obj.__qualname__] = obj
            if inspect.isclass(obj):
                for owner in obj.__mro__:
                    if not owner.__module__.startswith("assocmem"):
                        continue
                    for attr, value in vars(owner).items():
                        if attr.startswith("_") or attr in NO_TENSOR_METHODS:
                            continue
                        if isinstance(value, (staticmethod, classmethod)) or inspect.isfunction(value):
                            found.setdefault((obj.__module__, f"{obj.__qualname__}.{attr}"), value)
    return found


def entry_points() -> dict[str, object]:
    """:func:`walk`'s entry points by full name: ``module.qualname``."""
    return {f"{module}.{qualname}": obj for (module, qualname), obj in walk().items()}


def full_names(group: dict[str, object]) -> tuple[dict[str, str], list[str], list[str]]:
    """The entry point each key of a table names: (key -> full name, stale keys, ambiguous keys).

    A key is a full name or the qualified name of exactly one entry point."""
    by_qualname: dict[str, list[str]] = {}
    for module, qualname in walk():
        by_qualname.setdefault(qualname, []).append(f"{module}.{qualname}")
    full = {name for names in by_qualname.values() for name in names}
    named, stale, ambiguous = {}, [], []
    for key in group:
        if key in full:
            named[key] = key
        elif len(by_qualname.get(key, ())) == 1:
            named[key] = by_qualname[key][0]
        elif key in by_qualname:
            ambiguous.append(f"{key} (write one of {sorted(by_qualname[key])})")
        else:
            stale.append(key)
    return named, stale, ambiguous


def test_every_public_entry_point_is_in_the_table():
    listed = set()
    for group in (TABLE, BUILDING_BLOCKS, NO_TENSOR_INPUT):
        listed |= set(full_names(group)[0].values())
    missing = sorted(set(entry_points()) - listed)
    assert not missing, f"public entry points without bad-input cases (add them to TABLE): {missing}"


def test_the_table_names_only_public_entry_points_and_every_kind():
    seen: dict[str, str] = {}
    for group in (TABLE, BUILDING_BLOCKS, NO_TENSOR_INPUT):
        named, stale, ambiguous = full_names(group)
        assert not stale, f"not public (any more): {sorted(stale)}"
        assert not ambiguous, f"names shared by several entry points, write them in full: {ambiguous}"
        for key, full in named.items():
            assert seen.setdefault(full, key) == key, f"{full} is listed twice: as {seen[full]!r} and {key!r}"
    for key, cells in TABLE.items():
        assert set(cells) == set(KINDS), (key, sorted(set(KINDS) ^ set(cells)))


CASES = [(key, kind, cell) for key, cells in TABLE.items() for kind, cell in cells.items()]


@pytest.mark.parametrize(
    ("key", "kind", "cell"),
    [c for c in CASES if isinstance(c[2], Bad)],
    ids=[f"{k}-{kind}" for k, kind, cell in CASES if isinstance(cell, Bad)],
)
def test_bad_input_is_a_clear_error_naming_the_argument(key, kind, cell):
    with pytest.raises((TypeError, ValueError)) as err:
        cell.call()
    assert re_search(cell.names, str(err.value)), (
        f"{key} [{kind}]: the error does not name {cell.names!r}: {err.value}"
    )


@pytest.mark.parametrize("key", sorted(OPTIONS))
def test_every_option_is_checked(key):
    """Options beyond the one ``option`` cell of a row (tests/bad_input_dynamics.py)."""
    test_bad_input_is_a_clear_error_naming_the_argument(key, "option", OPTIONS[key])


@pytest.mark.parametrize(
    ("key", "kind", "cell"),
    [c for c in CASES if isinstance(c[2], Result)],
    ids=[f"{k}-{kind}" for k, kind, cell in CASES if isinstance(cell, Result)],
)
def test_documented_results(key, kind, cell):
    assert cell.check(cell.call()), f"{key} [{kind}]: {cell.doc}"


@pytest.mark.parametrize("key", sorted(BUILDING_BLOCKS))
def test_building_blocks_give_nan_for_nan(key):
    """Not an ordinary answer: a NaN anywhere in the input shows in the output."""
    assert nan_out(BUILDING_BLOCKS[key]())


def test_value_checks_can_be_switched_off_for_hot_loops():
    """One switch (docs/bad-input.md): off, a NaN query passes through retrieve (NaN out) and nothing waits."""
    bad = poke(Q, NAN)
    with checks.value_checks(False):
        assert nan_out(am.retrieve(M, bad))
        assert nan_out(layer()(poke(X, NAN)))
    with pytest.raises(ValueError, match="queries"):
        am.retrieve(M, bad)
    checks.set_value_checks(False)
    try:
        assert not checks.value_checks_enabled()
        assert nan_out(am.retrieve(M, bad))
    finally:
        checks.set_value_checks(True)
    with pytest.raises(TypeError, match="enabled"):
        checks.set_value_checks(0)


def re_search(pattern: str, text: str) -> bool:
    return re.search(pattern, text) is not None


def test_empty_batches_give_empty_answers():
    """docs/bad-input.md, "Empty inputs": an empty batch is not an error; an empty memory is."""
    empty = X[:0]
    assert layer()(empty).shape == (0, 5, 8)
    assert am.nn.HopfieldPooling(8, quantity=2)(empty).shape == (0, 16)
    encoder = am.nn.HopfieldEncoderLayer(am.nn.Hopfield(8), dim_feedforward=16)
    assert encoder(empty).shape == (0, 5, 8)
    assert am.retrieve(M, Q[:0], steps=None).shape == (0, 4)
    assert am.retrieve(M[None].expand(0, -1, -1), Q[:0]).shape == (0, 4)


@pytest.mark.parametrize("method", sorted(am.dynamics.METHODS))
@pytest.mark.parametrize("tol", [1e-4, 0.0])
def test_an_empty_batch_relaxes_to_an_empty_batch(method, tol):
    """Every integrator, with and without a stop rule (tol=0: the adaptive ones measure their error over no sample)."""
    out = am.relax(net(), state(Q[:0]), method=method, tol=tol, t_max=1.0)
    assert out.states["v"].shape == (0, 4) and out.states["h"].shape == (0, 12)
