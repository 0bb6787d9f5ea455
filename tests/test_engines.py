"""The engine x preset table: every fast path against the general network it names, on small float64 cases.

One row per (engine, preset); every row runs at every size of :data:`SIZES` (batch, N features, K memories).

- retrieval: ``retrieve``'s ``n`` updates are ``n`` Euler steps with ``dt = tau_f`` of the reduced model B network
  (``relax``), state and energy at every step, for a memory shared by the batch (docs/reference.md §2);
- binary: ``BinaryDAM`` (``F`` = power, rectified, exp) and ``ClassicalHopfield``: energy, field, every single spin
  move of a sweep (async on each backend, and sync) against model A with binary units and ``h`` integrated out:
  a spin takes the sign of ``E(sigma_i = -1) - E(sigma_i = +1)``, a tie keeps it (docs/reference.md §2-3);
- nn: the Hopfield layers' association (``hopfield_update``; ``Hopfield`` with identity projections) equals
  ``retrieve``, one and several updates, energies included;
- bank: a ``MemoryBank``'s steps (local backend; candidate backend within its certificate) are ``retrieve``'s;
- classifier: the class update of ``DAMClassifier`` is model A's (and ``BinaryDAM``'s) energy difference of each
  class neuron (docs/reference.md §3).

A new engine joins this table on its first day. Every call into the API under test goes through the adapters
right below, so a renamed argument or result field is edited in one place.
"""

import zlib
from collections.abc import Callable
from dataclasses import dataclass

import pytest
import torch

import assocmem as am
from assocmem.classifier import DAMClassifier
from assocmem.engines import BinaryDAM, ClassicalHopfield
from assocmem.engines.binary.sweeps import numba_available, random_orders
from assocmem.models import interaction, model_a, model_b
from assocmem.nn import Hopfield
from assocmem.nn.functional import hopfield_update

F64 = torch.float64

# ------------------------------------------------------------------------------- adapters (the loops' one vocabulary)


def retrieve(patterns, queries, beta, steps, values=None, chunk=None):
    """-> (states, energies (T, batch)) of ``n = steps`` updates."""
    res = am.retrieve(patterns, queries, beta, values=values, steps=steps, chunk_size=chunk, record=True)
    return res.states, res.energies


def relax_euler(net, v, tau, steps):
    """-> (v after exactly ``steps`` Euler steps of ``dt = tau``, energies (steps + 1, batch), steps done)."""
    traj = am.relax(net, {"v": v}, method="euler", dt=tau, t_max=steps * tau, tol=0)
    return traj.states["v"], traj.energies, traj.steps


def one_sweep(memory, cues, backend, seed):
    """-> (states after one sweep, energies (2, batch)); ``backend`` "numba"/"torch" (async, in the order a
    generator seeded ``seed`` draws) or "sync"."""
    gen = torch.Generator().manual_seed(seed)
    mode, backend = ("sync", "auto") if backend == "sync" else ("async", backend)
    res = memory.recall(cues, mode=mode, max_steps=1, generator=gen, record=True, backend=backend)
    return res.states, res.energies


def sweep_orders(batch, n, seed):
    """The order in which one async sweep visits the spins of each cue (the recall's first draw)."""
    return random_orders(batch, n, torch.Generator().manual_seed(seed), torch.device("cpu"))


def functional_association(patterns, queries, values, beta, steps):
    """``hopfield_update`` on one head; -> (output, energies (T, batch, L))."""
    b = queries.shape[0]
    stored = patterns.expand(b, 1, *patterns.shape)
    projections = values.expand(b, 1, *values.shape)
    res = hopfield_update(
        queries[:, None], stored, projections, beta, max_steps=steps - 1, tol=0.0, record=True
    )
    return res.output[:, 0], res.energies[:, :, 0]


def layer_association(patterns, queries, values, beta, steps):
    """``Hopfield`` with every projection and normalisation off; -> (output, energies (T, batch, L))."""
    plain = {f"normalize_{w}": False for w in ("stored_pattern", "state_pattern", "pattern_projection")}
    plain |= {
        f"normalize_{w}_affine": False for w in ("stored_pattern", "state_pattern", "pattern_projection")
    }
    static = {f"{w}_as_static": True for w in ("stored_pattern", "state_pattern", "pattern_projection")}
    layer = Hopfield(
        scaling=beta, update_steps_max=steps - 1, update_steps_eps=1e-300, disable_out_projection=True,
        **plain, **static,
    )  # fmt: skip
    b = queries.shape[0]
    inputs = (patterns.expand(b, *patterns.shape), queries, values.expand(b, *values.shape))
    return layer(inputs), layer.retrieve(inputs).energies[:, :, 0]


# --------------------------------------------------------------------------------------------------- the table


@dataclass(frozen=True)
class Row:
    engine: str
    preset: str
    check: Callable[..., None]  # check(size, gen, **options)
    options: tuple = ()

    @property
    def id(self) -> str:
        return f"{self.engine}~{self.preset}"


#: (batch, N features or pixels, K memories)
SIZES = [(1, 5, 2), (3, 9, 6), (5, 16, 11)]


def spins(*shape, gen):
    return torch.where(torch.rand(*shape, generator=gen, dtype=F64) < 0.5, -1.0, 1.0).to(F64)


def with_unit(states, unit, value):
    """``states`` with unit ``unit`` (an int, or one index per sample) set to ``value``."""
    out = states.clone()
    rows = torch.arange(states.shape[0])
    out[rows, unit] = value
    return out


# --- retrieval vs relax of reduced model B


def check_retrieval(size, gen, *, reduce, chunk, tau, beta):
    batch, d, k = size
    xi = torch.randn(k, d, generator=gen, dtype=F64)
    queries = 2 * torch.randn(batch, d, generator=gen, dtype=F64)
    net = reduce(xi, beta, tau)
    for steps in (1, 2, 5):
        states, energies = retrieve(xi, queries, beta, steps, chunk=chunk)
        v, general, done = relax_euler(net, queries, tau, steps)
        assert (done == steps).all()
        torch.testing.assert_close(states, v, rtol=1e-12, atol=1e-12)
        assert energies.shape == (steps + 1, batch)
        torch.testing.assert_close(energies, general, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(energies[-1], net.energy({"v": states}), rtol=1e-12, atol=1e-12)


REDUCED_B = {
    "model_b(reduced=True)": lambda xi, beta, tau: model_b(xi, beta, tau_f=tau, reduced=True),
    "model_b().integrate_out('h')": lambda xi, beta, tau: model_b(xi, beta, tau_f=tau).integrate_out("h"),
}
ROWS = [
    Row(
        f"retrieve(chunk_size={chunk})",
        preset,
        check_retrieval,
        (("reduce", reduce), ("chunk", chunk), *opts),
    )
    for chunk, opts in ((None, (("tau", 1.0), ("beta", 0.7))), (2, (("tau", 0.5), ("beta", 3.0))))
    for preset, reduce in REDUCED_B.items()
]


def check_bank(size, gen, *, backend, beta):
    """A ``MemoryBank``'s ``n`` steps are ``retrieve``'s: ``n`` Euler steps of the reduced model B. A candidate bank
    answers within its certificate: ``2 W max |xi|`` in the states, ``-log(1 - W) / beta`` in the energies."""
    batch, d, k = size
    xi = torch.randn(k, d, generator=gen, dtype=F64)
    queries = 2 * torch.randn(batch, d, generator=gen, dtype=F64)
    net = model_b(xi, beta, reduced=True)
    search = {}
    if backend == "candidates":
        pytest.importorskip("faiss")
        search = {"index": "ivf", "clusters": 2, "nprobe": 1, "outside_tol": 1e-12}
    bank = am.MemoryBank(xi, backend=backend, **search)
    order = bank.ids  # a candidate bank keeps its rows in cluster order
    assert torch.equal(bank.backend.local.patterns.data if search else bank.backend.patterns.data, xi[order])
    for steps in (1, 2, 5):
        res = bank.retrieve(queries, beta, steps=steps, record=True)
        v, general, _ = relax_euler(net, queries, 1.0, steps)
        bound = 0.0 if res.bound is None else float(res.bound.max())
        tol = 1e-12 + 2 * bound * float(xi.norm(dim=1).max()) * steps
        torch.testing.assert_close(res.states, v, rtol=0, atol=tol)
        torch.testing.assert_close(res.energies, general, rtol=0, atol=1e-9 + tol * 10)


ROWS += [
    Row(f"MemoryBank(backend={b!r})", "model_b(reduced=True)", check_bank, (("backend", b), ("beta", 2.0)))
    for b in ("local", "candidates")
]


# --- binary engines vs model A with binary units


def model_a_energy(xi, lagrangian):
    net = model_a(xi, lagrangian, feature=am.Abs(), reduced=True)
    return lambda sigma: net.energy({"v": sigma})


def check_binary(size, gen, *, make, lagrangian, scale, backend):
    """``scale(K, N) = (a, e0, c)``: the engine's energy is ``a E_A + e0`` and its field ``c (E_A(-1) - E_A(+1))``."""
    batch, n, k = size
    xi, sigma = spins(k, n, gen=gen), spins(batch, n, gen=gen)
    memory, energy_a = make(xi), model_a_energy(xi, lagrangian)
    a, e0, c = scale(k, n)
    torch.testing.assert_close(memory.energy(sigma), a * energy_a(sigma) + e0)
    field = memory.field(sigma)
    for i in range(n):
        diff = energy_a(with_unit(sigma, i, -1.0)) - energy_a(with_unit(sigma, i, 1.0))
        torch.testing.assert_close(field[:, i], c * diff)
    seed = int(torch.randint(1 << 30, (1,), generator=gen))
    states, energies = one_sweep(memory, sigma, backend, seed)
    expected = sigma.clone()
    if backend == "sync":  # every spin from the same state
        for i in range(n):
            diff = energy_a(with_unit(sigma, i, -1.0)) - energy_a(with_unit(sigma, i, 1.0))
            expected[:, i] = torch.where(diff > 0, 1.0, torch.where(diff < 0, -1.0, sigma[:, i]))
    else:  # one spin at a time, in the recall's order, each from the state the previous moves left
        for unit in sweep_orders(batch, n, seed).T:
            diff = energy_a(with_unit(expected, unit, -1.0)) - energy_a(with_unit(expected, unit, 1.0))
            old = expected[torch.arange(batch), unit]
            expected = with_unit(expected, unit, torch.where(diff > 0, 1.0, torch.where(diff < 0, -1.0, old)))
    assert torch.equal(states, expected)
    torch.testing.assert_close(energies[-1], a * energy_a(expected) + e0)


BINARY = [
    ("power", {"n": 2}),
    ("power", {"n": 3}),
    ("rectified", {"n": 2}),
    ("rectified", {"n": 4}),
    ("exp", {"beta": 0.3}),
    ("exp", {}),
]
BACKENDS = (["numba"] if numba_available() else []) + ["torch", "sync"]
ROWS += [
    Row(
        f"BinaryDAM({', '.join([repr(F), *(f'{k}={v}' for k, v in kw.items())])}).{backend}",
        "model_a(xi, interaction(F), feature=Abs(), reduced=True)",
        check_binary,
        (
            ("make", lambda xi, F=F, kw=kw: BinaryDAM(xi, F, **kw)),
            ("lagrangian", interaction(F, **kw)),
            ("scale", lambda k, n: (1.0, 0.0, 1.0)),
            ("backend", backend),
        ),
    )
    for F, kw in BINARY
    for backend in BACKENDS
]
ROWS += [
    Row(
        f"ClassicalHopfield.{backend}",
        "model_a(xi, interaction('power', n=2), feature=Abs(), reduced=True)",
        check_binary,
        (
            ("make", ClassicalHopfield),
            ("lagrangian", interaction("power", n=2)),
            # E = -1/2 sum_{i != j} T_ij s_i s_j = 1/2 E_A + K N / 2; h_i = 1/4 of model A's difference
            ("scale", lambda k, n: (0.5, 0.5 * k * n, 0.25)),
            ("backend", backend),
        ),
    )
    for backend in BACKENDS
]


# --- the Hopfield layers vs retrieve


def check_association(size, gen, *, associate, beta):
    batch, d, k = size
    xi = torch.randn(k, d, generator=gen, dtype=F64)
    queries = torch.randn(batch, 3, d, generator=gen, dtype=F64)
    values = torch.randn(k, 4, generator=gen, dtype=F64)
    for steps in (1, 2, 5):
        out, energies = associate(xi, queries, values, beta, steps)
        want, want_energies = retrieve(xi, queries, beta, steps, values=values)
        torch.testing.assert_close(out, want, rtol=1e-12, atol=1e-12)
        assert energies.shape == want_energies.shape == (steps, batch, 3)
        torch.testing.assert_close(energies, want_energies, rtol=1e-12, atol=1e-12)


ROWS += [
    Row(name, "retrieve (model B, reduced)", check_association, (("associate", fn), ("beta", beta)))
    for name, fn, beta in (
        ("nn.functional.hopfield_update", functional_association, 1.3),
        ("nn.Hopfield(identity projections)", layer_association, 0.6),
    )
]


# --- the classifier's class update vs model A / BinaryDAM


def check_class_update(size, gen, *, F, n, against):
    """``z_a = beta (E(x_a = x0) - E(x_a = -x0))``, the class neurons starting at ``x0 = -1``."""
    batch, pixels, k = size
    classes = 3
    v = torch.sign(torch.randn(batch, pixels, generator=gen, dtype=F64))
    if against == "model_a":  # the classifier's own (real-valued) memories, model A with binary units
        model = DAMClassifier(
            k, pixels=pixels, classes=classes, n=n, F=F, temperature=2.5, dtype=F64, generator=gen
        )
        energy = model_a_energy(model.memories.detach(), interaction(F, n))
    else:  # +-1 memories: BinaryDAM's energy and its spin field
        xi = spins(k, pixels + classes, gen=gen)
        model = DAMClassifier(xi, pixels=pixels, classes=classes, n=n, F=F, temperature=2.5)
        dam = BinaryDAM(xi, F=F, n=n)
        energy = dam.energy
    x0 = model.class_state
    start = torch.cat([v, torch.full((batch, classes), x0, dtype=F64)], 1)
    want = torch.stack(
        [model.beta * (energy(start) - energy(with_unit(start, pixels + a, -x0))) for a in range(classes)], 1
    )
    torch.testing.assert_close(model.fields(v).detach(), want, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(model(v).detach(), torch.tanh(want), rtol=1e-10, atol=1e-12)
    if against == "binary_dam":
        torch.testing.assert_close(model.fields(v).detach(), model.beta * dam.field(start)[:, pixels:])


ROWS += [
    Row(
        f"DAMClassifier(F={F!r}, n={n})",
        preset,
        check_class_update,
        (("F", F), ("n", n), ("against", against)),
    )
    for F, n in (
        ("power", 2),
        ("power", 3),
        ("power", 4),
        ("rectified", 2),
        ("rectified", 3),
        ("rectified", 5),
    )
    for against, preset in (
        ("model_a", "model_a(memories, feature=Abs(), reduced=True)"),
        ("binary_dam", "BinaryDAM"),
    )
]


@pytest.mark.parametrize("size", SIZES, ids=lambda s: "B{}-N{}-K{}".format(*s))
@pytest.mark.parametrize("row", ROWS, ids=lambda r: r.id)
def test_fast_path_equals_the_general_network(row, size):
    gen = torch.Generator().manual_seed(zlib.crc32(f"{row.id}{size}".encode()))
    row.check(size, gen, **dict(row.options))


def test_the_table_covers_every_engine():
    """Each fast path of the package has rows (a new engine joins the table on its first day)."""
    engines = {row.engine.split("(")[0].split(".")[0] for row in ROWS}
    assert engines >= {"retrieve", "BinaryDAM", "ClassicalHopfield", "nn", "DAMClassifier", "MemoryBank"}
    assert "torch" in BACKENDS and "sync" in BACKENDS
