"""Rows of the bad-input table (tests/test_bad_input.py) for the dynamics floor's training entry points: the
implicit gradient's options and the energy's lower bound (``bounded_below``, ``CouplingBound``). Their tensor
input is the clamp, a bool mask per layer, checked as relax checks it."""

from __future__ import annotations

import torch

import assocmem as am
from assocmem.dynamics import CouplingBound, Implicit, bounded_below
from tests.bad_input_cases import NO_VALUES, Bad, Result, meta


def linear_net() -> am.Network:
    """Two linear layers (Identity, ReLU) coupled by a trainable synapse of norm well below 1."""
    w = torch.nn.Parameter(0.01 * torch.randn(6, 4, generator=torch.Generator().manual_seed(0)))
    return am.Network(
        {"v": am.Layer(4, am.Identity()), "h": am.Layer(6, am.ReLU())}, [am.DenseSynapse("v", "h", w)]
    )


MASK = torch.ones(3, 4, dtype=torch.bool)
EMPTY = "a mask over no sample holds every unit of it (vacuously): v is a constant, as with clamp={'v': True}"
NO_NAN = "a clamp mask is boolean: it holds no NaN or Inf"


def _clamp_rows(call) -> dict[str, Bad | Result | str]:
    """The cells of an entry point that takes ``(network, clamp=...)``."""
    return {
        "nan": NO_NAN,
        "inf": NO_NAN,
        "last_dim": Bad(lambda: call(linear_net(), clamp={"v": MASK[:, :3]}), r"clamp\['v'\]"),
        "rank": Bad(lambda: call(linear_net(), clamp={"v": MASK[None]}), r"clamp\['v'\]"),
        "empty": "below, per entry point",
        "dtype": Bad(lambda: call(linear_net(), clamp={"v": MASK.float()}), r"clamp\['v'\]"),
        "meta": Bad(lambda: call(linear_net(), clamp={"v": meta(MASK)}), r"clamp\['v'\]"),
        "option": Bad(lambda: call(linear_net(), clamp={"w": True}), "clamp"),
    }


TABLE: dict[str, dict[str, Bad | Result | str]] = {
    "Implicit": {
        **dict.fromkeys(("nan", "inf", "last_dim", "rank", "empty", "dtype", "meta"), NO_VALUES),
        "option": Bad(lambda: Implicit(tol=float("nan")), "tol"),
    },
    "bounded_below": {
        **_clamp_rows(bounded_below),
        "empty": Result(
            lambda: bounded_below(linear_net(), clamp={"v": MASK[:0]}),
            lambda out: out.bounded and out.linear == (),
            EMPTY,
        ),
    },
    "CouplingBound": {
        **_clamp_rows(CouplingBound),
        "empty": Result(
            lambda: CouplingBound(linear_net(), clamp={"v": MASK[:0]}),
            lambda out: out.trainable == [] and out() == 1.0,
            EMPTY,
        ),
    },
}


def _cut(call, lagrangian, mask):
    """``call(network, state, clamp=...)`` with a clamp mask that cuts through a coupled group of layer ``v``."""
    network = am.Network(
        {"v": am.Layer((2, 4), lagrangian), "h": am.Layer(6, am.LogSumExp())},
        [am.DenseSynapse("v", "h", torch.randn(6, 8))],
    )
    return call(network, {"v": torch.rand(3, 2, 4), "h": torch.zeros(3, 6)}, clamp={"v": mask})


HALF = torch.tensor([True, True, False, False])  #: half of every row of a (2, 4) layer
#: Extra option cells, each a bad call naming the argument (tests/test_bad_input.py runs them too).
OPTIONS: dict[str, Bad] = {
    "relax-clamp-cut": Bad(
        lambda: _cut(am.relax, am.Spherical(), HALF), r"clamp\['v'\].*assocmem\.ham\.completion\.complete"
    ),
    "Network.velocity-clamp-cut": Bad(
        lambda: _cut(lambda n, s, **kw: n.velocity(s, **kw), am.LayerNorm(dim=-1), HALF),
        r"clamp\['v'\].*slice along dim=-1 of 'v' whole or not at all",
    ),
    "Implicit-max_steps": Bad(lambda: Implicit(max_steps=0), "max_steps"),
    "Implicit-solver": Bad(lambda: Implicit(solver="lu"), "solver"),
    "bounded_below-iterations": Bad(lambda: bounded_below(linear_net(), iterations=0), "iterations"),
    "bounded_below-network": Bad(lambda: bounded_below({"v": 1}), "network"),
    "bounded_below-clamp": Bad(lambda: bounded_below(linear_net(), clamp=[True]), "clamp"),
    "CouplingBound-bound": Bad(lambda: CouplingBound(linear_net(), bound=True), "bound"),
    "CouplingBound-iterations": Bad(lambda: CouplingBound(linear_net(), iterations=0), "iterations"),
}
