"""Small trainable networks for the gradient tests: one line of :data:`CASES` per kind of energy term.

A case has ``params(gen)``, the tensors a gradient is taken for (weights, clamped values, input currents), and
``build(p)``, which makes the network and the relaxation's arguments from them, so that a test can hand the
tensors to ``torch.autograd.gradcheck``. Every network's energy is bounded below (bounded Lagrangians, or a
coupling norm below 1 among ReLU/Identity layers) and relaxes to a fixed point from the state built here.
Adding a new energy term to the gradient tests is one builder and one line in ``CASES``.
"""

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor

import assocmem as am

F64 = torch.float64
BATCH = 2


@dataclass
class Problem:
    network: am.Network
    state: dict[str, Tensor]
    clamp: dict = field(default_factory=dict)
    inputs: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Case:
    params: Callable[[torch.Generator], dict[str, Tensor]]
    build: Callable[[dict[str, Tensor]], Problem]


def _randn(gen, *shape, scale=1.0):
    return scale * torch.randn(*shape, generator=gen, dtype=F64)


def _zeros(net: am.Network) -> dict[str, Tensor]:
    return net.zero_state(BATCH, dtype=F64)


def _start(net: am.Network, **given: Tensor) -> dict[str, Tensor]:
    return {**_zeros(net), **given}


# ------------------------------------------------------------------ dense: clamped image, tanh hidden, softmax labels
def dense_params(gen):
    return {
        "w1": _randn(gen, 5, 6, scale=0.5),
        "w2": _randn(gen, 3, 5, scale=0.7),
        "v": _randn(gen, BATCH, 6),
        "bias": _randn(gen, 5, scale=0.3),
    }


def dense(p):
    net = am.Network(
        {"v": am.Layer(6, am.Identity()), "h": am.Layer(5, am.Tanh()), "l": am.Layer(3, am.LogSumExp(2.0))},
        [am.DenseSynapse("v", "h", p["w1"]), am.DenseSynapse("h", "l", p["w2"])],
    )
    return Problem(net, _start(net, v=p["v"]), {"v": True}, {"h": p["bias"]})


# ------------------------------------------------------------------ ReLU hidden and Identity labels, coupling < 1
def relu_params(gen):
    return {
        "w1": _randn(gen, 6, 5, scale=0.6),
        "w2": _randn(gen, 3, 6, scale=0.2),
        "v": _randn(gen, BATCH, 5),
    }


def relu(p):
    net = am.Network(
        {
            "v": am.Layer(5, am.Identity()),
            "h": am.Layer(6, am.ReLU()),
            "l": am.Layer(3, am.Identity(), tau=0.5),
        },
        [am.DenseSynapse("v", "h", p["w1"]), am.DenseSynapse("h", "l", p["w2"])],
    )
    return Problem(net, _start(net, v=p["v"]), {"v": True})


# ------------------------------------------------------------------ a recurrent (symmetric) synapse
def recurrent_params(gen):
    return {"w": _randn(gen, 4, 5, scale=0.5), "a": _randn(gen, 4, 4, scale=0.4), "v": _randn(gen, BATCH, 5)}


def recurrent(p):
    net = am.Network(
        {"v": am.Layer(5, am.Identity()), "h": am.Layer(4, am.Sigmoid(2.0))},
        [
            am.DenseSynapse("v", "h", p["w"]),
            am.DenseSynapse("h", "h", 0.5 * (p["a"] + p["a"].T), name="self"),
        ],
    )
    return Problem(net, _start(net, v=p["v"]), {"v": True})


# ------------------------------------------------------------------ convolution (strided) and a dense readout
def conv_params(gen):
    return {
        "k": _randn(gen, 2, 1, 3, 3, scale=0.4),
        "w": _randn(gen, 3, 18, scale=0.4),
        "image": _randn(gen, BATCH, 1, 6, 6),
    }


def conv(p):
    net = am.Network(
        {
            "image": am.Layer((1, 6, 6), am.Identity()),
            "c": am.Layer((2, 3, 3), am.Tanh()),
            "l": am.Layer(3, am.LogSumExp()),
        },
        [am.ConvSynapse("image", "c", p["k"], stride=2, padding=1), am.DenseSynapse("c", "l", p["w"])],
    )
    return Problem(net, _start(net, image=p["image"]), {"image": True})


# ---------------------------------------------------- a many-body term (integrated-out layer), half clamped
def manybody_params(gen):
    return {"xi": _randn(gen, 4, 6, scale=0.8), "v": _randn(gen, BATCH, 6)}


def manybody(p):
    micro = am.Network(
        {"v": am.Layer(6, am.Tanh()), "h": am.Layer(4, am.LogSumExp(1.5))},
        [am.DenseSynapse("v", "h", p["xi"])],
    )
    net = micro.integrate_out("h")
    mask = torch.tensor([True, True, True, False, False, False])
    return Problem(net, {"v": p["v"]}, {"v": mask})


# ------------------------------------------------------------------ a custom term that captures a trainable tensor
def function_params(gen):
    return {"w": _randn(gen, 4, 5, scale=0.5), "q": _randn(gen, 4, scale=0.5), "v": _randn(gen, BATCH, 5)}


def function(p):
    q = p["q"]
    term = am.EnergyTerm.of(lambda g: -0.5 * (g["h"] @ q) ** 2, "h", name="focus")
    net = am.Network(
        {"v": am.Layer(5, am.Identity()), "h": am.Layer(4, am.Tanh())},
        [am.DenseSynapse("v", "h", p["w"]), term],
    )
    return Problem(net, _start(net, v=p["v"]), {"v": True})


# ------------------------------------- spherical pixels clamped in some samples (a mask on a coupled layer: GMRES)
def masked_params(gen):
    return {
        "xi": _randn(gen, 4, 8, scale=1.0),
        "v": _randn(gen, BATCH, 8),
        "gain": _randn(gen, 4, 4, scale=0.3),
    }


def masked(p):
    net = am.Network(
        {
            "v": am.Layer(8, am.Spherical()),
            "h": am.Layer(4, am.LayerNorm(1.0)),
            "m": am.Layer(4, am.LogSumExp(2.0)),
        },
        [am.DenseSynapse("v", "h", p["xi"]), am.DenseSynapse("h", "m", p["gain"])],
    )
    mask = torch.zeros(BATCH, 1, dtype=torch.bool)  # whole samples: a mask may not cut a spherical layer
    mask[::2] = True
    return Problem(net, _start(net, v=p["v"]), {"v": mask})


# ------------------------------------------------------------------ convolution, average pooling, dense readout
def pooling_params(gen):
    return {
        "k": _randn(gen, 2, 1, 3, 3, scale=0.3),
        "w": _randn(gen, 3, 8, scale=0.3),
        "image": _randn(gen, BATCH, 1, 4, 4),
    }


def pooling(p):
    net = am.Network(
        {
            "image": am.Layer((1, 4, 4), am.Identity()),
            "c": am.Layer((2, 4, 4), am.Tanh()),
            "p": am.Layer((2, 2, 2), am.ReLU()),
            "l": am.Layer(3, am.LogSumExp()),
        },
        [
            am.ConvSynapse("image", "c", p["k"], padding=1),
            am.AvgPoolSynapse("c", "p", 2),
            am.DenseSynapse("p", "l", p["w"]),
        ],
    )
    return Problem(net, _start(net, image=p["image"]), {"image": True})


# ------------------------------------------- token layers (layer norm per token), the first two tokens clamped
TOKENS, WIDTH = 4, 3


def _token_mask():
    mask = torch.zeros(TOKENS, WIDTH, dtype=torch.bool)
    mask[:2] = True
    return mask


def _token_layer(*terms):
    return am.Network({"t": am.Layer((TOKENS, WIDTH), am.LayerNorm(dim=-1))}, list(terms))


def attention_params(gen):
    return {
        "wk": _randn(gen, 2, 2, WIDTH, scale=0.6),
        "wq": _randn(gen, 2, 2, WIDTH, scale=0.6),
        "t": _randn(gen, BATCH, TOKENS, WIDTH),
        "bias": _randn(gen, TOKENS, WIDTH, scale=0.3),
    }


def attention(p):
    net = _token_layer(am.AttentionTerm("t", p["wk"], p["wq"], beta=1.5))
    return Problem(net, {"t": p["t"]}, {"t": _token_mask()}, {"t": p["bias"]})


def hopfield_params(gen):
    return {
        "xi": _randn(gen, 5, WIDTH, scale=0.7),
        "t": _randn(gen, BATCH, TOKENS, WIDTH),
        "bias": _randn(gen, TOKENS, WIDTH, scale=0.3),
    }


def hopfield(lagrangian, clamped):
    """A token Hopfield memory with an input current; ``clamped``: the first two tokens held (the adjoint by
    GMRES: the mask cuts through the layer norm's coupled units), else every token free (conjugate gradients)."""

    def build(p):
        net = _token_layer(am.HopfieldTerm("t", p["xi"], lagrangian))
        return Problem(net, {"t": p["t"]}, {"t": _token_mask()} if clamped else {}, {"t": p["bias"]})

    return build


CASES: dict[str, Case] = {
    "dense": Case(dense_params, dense),
    "relu": Case(relu_params, relu),
    "recurrent": Case(recurrent_params, recurrent),
    "conv": Case(conv_params, conv),
    "manybody": Case(manybody_params, manybody),
    "function": Case(function_params, function),
    "masked": Case(masked_params, masked),
    "pooling": Case(pooling_params, pooling),
    "attention": Case(attention_params, attention),
    "hopfield_relu": Case(hopfield_params, hopfield(am.ReLU(), clamped=True)),
    "hopfield_lse": Case(hopfield_params, hopfield(am.LogSumExp(2.0), clamped=False)),
}


def blobs(count: int, seed: int, dim: int = 32, classes: int = 4, noise: float = 1.5):
    """A small classification task: ``classes`` random +-1 prototypes in ``dim`` dimensions, each sample one of
    them plus Gaussian noise of standard deviation ``noise`` (float64; the prototypes are the same for every
    ``seed``, the samples differ). Returns ``(x, labels)``."""
    prototypes = torch.sign(torch.randn(classes, dim, generator=torch.Generator().manual_seed(0), dtype=F64))
    gen = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, classes, (count,), generator=gen)
    return prototypes[labels] + noise * torch.randn(count, dim, generator=gen, dtype=F64), labels


def ham(
    hidden: am.Lagrangian,
    labels: am.Lagrangian,
    dim: int = 32,
    width: int = 32,
    classes: int = 4,
    seed: int = 3,
):
    """A dense HAM classifier: a clamped visible layer ``v``, a hidden layer ``h`` and a label layer ``l`` (read
    out at the fixed point), trainable weights at a small initial scale."""
    gen = torch.Generator().manual_seed(seed)
    w1 = torch.nn.Parameter(0.5 * torch.randn(width, dim, generator=gen, dtype=F64) / dim**0.5)
    w2 = torch.nn.Parameter(0.5 * torch.randn(classes, width, generator=gen, dtype=F64) / width**0.5)
    return am.Network(
        {"v": am.Layer(dim, am.Identity()), "h": am.Layer(width, hidden), "l": am.Layer(classes, labels)},
        [am.DenseSynapse("v", "h", w1), am.DenseSynapse("h", "l", w2)],
    )
