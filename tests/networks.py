"""Random networks for the property tests: 1-3 layers, dense, convolutional and recurrent synapses,
every convex Lagrangian with a smooth activation, random time constants."""

from dataclasses import dataclass

import torch
from hypothesis import strategies as st

from assocmem import lagrangians as L
from assocmem.network import ConvSynapse, DenseSynapse, Layer, Network

#: Convex Lagrangians with continuous activations (Abs is convex too, but its activation jumps, so the
#: descent theorem dE/dt = -tau xdot.H.xdot, which needs L twice differentiable, does not apply to it).
CONVEX = [
    lambda: L.Identity(),
    lambda: L.Tanh(beta=1.5),
    lambda: L.Sigmoid(beta=2.0),
    lambda: L.ReLU(),
    lambda: L.RePU(3),
    lambda: L.Polynomial(4),
    lambda: L.Exp(beta=0.5),
    lambda: L.LogSumExp(beta=2.0),
    lambda: L.Spherical(),
    lambda: L.LayerNorm(gamma=1.2, delta=0.1),
    lambda: L.Additive(lambda t: torch.nn.functional.softplus(t), convex=True),
]
#: Indices of the Lagrangians whose activations grow faster than linearly (RePU(3), Polynomial(4), Exp): with
#: strong positive feedback their dynamics blow up in finite time (the energy is unbounded below), so the
#: builder gives their synapses and states a smaller scale to keep every trajectory finite over the test horizon.
SUPERLINEAR = {4, 5, 6}


@dataclass
class Spec:
    n_layers: int
    grid: list  # per layer: True for a (C, 4, 4) layer, False for a flat one
    channels: list
    sizes: list
    lagrangians: list  # indices into CONVEX
    taus: list
    pairs: list  # (i, j, conv?) for i < j
    recurrent: bool
    seed: int


@st.composite
def specs(draw, max_layers=3):
    n = draw(st.integers(1, max_layers))
    grid = [draw(st.booleans()) for _ in range(n)]
    pairs = []
    for j in range(1, n):
        for i in range(j):
            if i == j - 1 or draw(st.booleans()):
                conv = grid[i] and grid[j] and draw(st.booleans())
                pairs.append((i, j, conv))
    return Spec(
        n_layers=n,
        grid=grid,
        channels=[draw(st.integers(1, 2)) for _ in range(n)],
        sizes=[draw(st.integers(2, 6)) for _ in range(n)],
        lagrangians=[draw(st.integers(0, len(CONVEX) - 1)) for _ in range(n)],
        taus=[draw(st.floats(0.2, 3.0)) for _ in range(n)],
        pairs=pairs,
        recurrent=n == 1 or draw(st.booleans()),
        seed=draw(st.integers(0, 2**16)),
    )


def build(spec: Spec, dtype=torch.float64, scale=0.6) -> Network:
    gen = torch.Generator().manual_seed(spec.seed)

    def gain(*idx):
        return scale * (0.25 if any(spec.lagrangians[i] in SUPERLINEAR for i in idx) else 1.0)

    names = [f"l{i}" for i in range(spec.n_layers)]
    shapes = [(spec.channels[i], 4, 4) if spec.grid[i] else (spec.sizes[i],) for i in range(spec.n_layers)]
    layers = {
        names[i]: Layer(shapes[i], CONVEX[spec.lagrangians[i]](), tau=spec.taus[i])
        for i in range(spec.n_layers)
    }
    synapses = []
    for i, j, conv in spec.pairs:
        if conv:
            w = torch.randn(shapes[j][0], shapes[i][0], 3, 3, generator=gen, dtype=dtype)
            synapses.append(ConvSynapse(names[i], names[j], gain(i, j) * w / 3.0, padding=1))
        else:
            n_i, n_j = torch.Size(shapes[i]).numel(), torch.Size(shapes[j]).numel()
            w = torch.randn(n_j, n_i, generator=gen, dtype=dtype)
            synapses.append(DenseSynapse(names[i], names[j], gain(i, j) * w / n_i**0.5))
    if spec.recurrent:
        n0 = torch.Size(shapes[0]).numel()
        a = torch.randn(n0, n0, generator=gen, dtype=dtype)
        synapses.append(DenseSynapse(names[0], names[0], gain(0) * (a + a.T) / (2 * n0**0.5), name="self"))
    return Network(layers, synapses)


def random_state(net: Network, batch: int, seed: int, dtype=torch.float64, std=0.7):
    """Gaussian states; layers with superlinear activations start smaller (see SUPERLINEAR)."""
    gen = torch.Generator().manual_seed(seed)
    growth = (L.RePU, L.Polynomial, L.Exp)
    return {
        n: (0.3 if isinstance(layer.lagrangian, growth) else 1.0)
        * std
        * torch.randn(batch, *layer.shape, generator=gen, dtype=dtype)
        for n, layer in net.layers.items()
    }
