"""A hierarchical associative memory that classifies: clamp the image, relax, read the labels at the fixed point.

The recipes build a general :class:`~assocmem.Network` (no dynamics of their own; docs/reference.md §4):

- ``"dense"``: ``image`` (clamped) -> ``hidden`` (ReLU) -> ``labels`` (softmax);
- ``"conv"``: ``image`` (clamped) -> convolution -> ``features`` (ReLU) -> average pooling -> ``pooled`` (ReLU)
  [-> ``hidden`` (ReLU)] -> ``labels`` (softmax). The feedback from every layer goes down through the adjoint
  of the map that feeds it (the pooling's spread, the dense synapse's transpose).

Every layer also takes a trainable input current (a bias; a linear term of the energy). The energy is bounded
below by construction: the image is clamped (its synapse is a constant input current), the labels are softmax
neurons (bounded activations), and the only free layers with unbounded (linear) activations, ``features`` -
``pooled`` - ``hidden``, are coupled by the pooling (norm ``1/pool``, fixed) and, when there is a dense hidden
layer, by a synapse :class:`~assocmem.CouplingBound` keeps within ``coupling_bound`` after every optimiser step.
The network's prediction is the label layer's state (its logits) at the fixed point.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from assocmem import lagrangians as L
from assocmem.dynamics import Implicit, Trajectory, bounded_below, relax
from assocmem.dynamics.boundedness import Boundedness
from assocmem.ham.config import HamConfig
from assocmem.network import AvgPoolSynapse, ConvSynapse, DenseSynapse, Layer, Network

IMAGE = (1, 28, 28)
#: the conv recipe's hidden neurons (HamConfig.hidden_activation)
HIDDEN = {"relu": L.ReLU, "tanh": L.Tanh, "sigmoid": L.Sigmoid}
CLASSES = 10


def _weight(
    shape: tuple[int, ...], fan_in: int, generator: torch.Generator, dtype: torch.dtype
) -> nn.Parameter:
    return nn.Parameter(torch.randn(shape, generator=generator, dtype=dtype) / math.sqrt(fan_in))


def build_network(config: HamConfig, generator: torch.Generator) -> Network:
    """The recipe's network, weights drawn from ``generator`` (scaled by ``1/sqrt(fan in)``)."""
    dtype = getattr(torch, config.dtype)
    labels = Layer(CLASSES, L.LogSumExp(beta=config.label_beta))
    if config.architecture == "dense":
        pixels = math.prod(IMAGE)
        layers = {
            "image": Layer(pixels, L.Identity()),
            "hidden": Layer(config.hidden, L.ReLU()),
            "labels": labels,
        }
        synapses = [
            DenseSynapse("image", "hidden", _weight((config.hidden, pixels), pixels, generator, dtype)),
            DenseSynapse(
                "hidden", "labels", _weight((CLASSES, config.hidden), config.hidden, generator, dtype)
            ),
        ]
        return Network(layers, synapses)
    c, k, p = config.channels, config.kernel, config.pool
    maps = IMAGE[1] // config.stride
    side = maps // p
    layers = {
        "image": Layer(IMAGE, L.Identity()),
        "features": Layer((c, maps, maps), L.ReLU()),
        "pooled": Layer((c, side, side), L.ReLU()),
    }
    synapses = [
        ConvSynapse(
            "image",
            "features",
            _weight((c, 1, k, k), k * k, generator, dtype),
            stride=config.stride,
            padding=k // 2,
        ),
        AvgPoolSynapse("features", "pooled", p),
    ]
    top, width = "pooled", c * side * side
    if config.hidden:
        layers["hidden"] = Layer(config.hidden, HIDDEN[config.hidden_activation]())
        w = _weight((config.hidden, width), width, generator, dtype)
        synapses.append(DenseSynapse("pooled", "hidden", nn.Parameter(w.detach() * 0.5)))
        top, width = "hidden", config.hidden
    layers["labels"] = labels
    synapses.append(DenseSynapse(top, "labels", _weight((CLASSES, width), width, generator, dtype)))
    return Network(layers, synapses)


class HAMClassifier(nn.Module):
    """A recipe's network with its biases (input currents) and its relaxation settings.

    ``settle(images)`` clamps the images and relaxes the rest; ``logits(images)`` reads the label layer there.
    ``bound()`` (call it after every optimiser step) keeps the energy bounded below; :meth:`certificate` says
    whether it is (:func:`~assocmem.bounded_below`).
    """

    def __init__(self, config: HamConfig, generator: torch.Generator) -> None:
        super().__init__()
        self.config = config
        self.network = build_network(config, generator)
        dtype = getattr(torch, config.dtype)
        self.biases = nn.ParameterDict(
            {
                name: nn.Parameter(torch.zeros(self._bias_shape(layer.shape), dtype=dtype))
                for name, layer in self.network.layers.items()
                if name != "image"
            }
        )
        self.clamp = {"image": True}
        linear = config.hidden_activation == "relu"  # a bounded hidden layer leaves its synapse free
        hidden = [  # only the conv chain's pooled -> hidden: the dense recipe's image -> hidden has a clamped end
            s
            for s in self.network.synapses
            if isinstance(s, DenseSynapse) and s.pre == "pooled" and s.post == "hidden" and linear
        ]
        self._hidden = hidden  # (a list: not a submodule of its own, the network holds it)
        if hidden:  # the dense synapse's largest right singular vector (power iteration)
            v = torch.randn(hidden[0].weight.shape[1], generator=generator, dtype=dtype)
            self._v = self._power(v / v.norm(), 100)[1]
            self.bound()  # from the first relaxation on

    @staticmethod
    def _bias_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
        return (shape[0], 1, 1) if len(shape) == 3 else shape  # one current per feature map

    def _power(self, v: Tensor, iterations: int) -> tuple[float, Tensor]:
        """``iterations`` steps of power iteration on ``W^T W`` from ``v``: (the norm of ``W``, the new ``v``)."""
        w = self._hidden[0].weight.detach()
        sigma = 0.0
        for _ in range(iterations):
            u = w @ v
            sigma = float(u.norm())
            v = w.T @ u
            v = v / v.norm().clamp_min(1e-30)
        return sigma, v

    def bound(self) -> float:
        """Keep the energy bounded below after an optimiser step; returns the factor applied (1.0: none).

        The free linear layers form a chain ``features - pooled - hidden`` coupled by the pooling (norm
        ``a = 1/pool``, fixed) and the dense synapse (norm ``b``); the symmetric matrix of their norms has largest
        eigenvalue ``sqrt(a^2 + b^2)`` (docs/ham.md, "Bounded below by construction"), so the dense weights are
        rescaled to ``b = sqrt(coupling_bound^2 - a^2)`` whenever they pass it (their norm by power iteration,
        warm started). The certificate (:meth:`certificate`) checks the whole coupling again, independently.
        """
        if not self._hidden:
            return 1.0
        with torch.no_grad():
            sigma, self._v = self._power(self._v, 5)
            limit = math.sqrt(self.config.coupling_bound**2 - (1.0 / self.config.pool) ** 2)
            if sigma <= limit * (1 + 1e-5):  # (float32 rounding of a norm just set)
                return 1.0
            factor = limit / sigma
            self._hidden[0].weight.mul_(factor)
        return factor

    def bound_state(self) -> dict[str, Tensor]:
        """The warm-start vector of the coupling bound's power iteration (checkpointed for an exact resume)."""
        return {"v": self._v} if self._hidden else {}

    def load_bound_state(self, tensors: dict[str, Tensor]) -> None:
        if self._hidden:
            self._v = tensors["v"]

    def certificate(self) -> Boundedness:
        """:func:`~assocmem.bounded_below` with the image clamped."""
        return bounded_below(self.network, clamp=self.clamp)

    def _check_images(self, images: Tensor, who: str) -> None:
        """Refuse images the image layer cannot hold, naming ``images`` and the shapes it takes (their values,
        dtype and device are relax's to check: ``state['image']``)."""
        size = math.prod(IMAGE)
        if not torch.is_tensor(images):
            raise TypeError(f"HAMClassifier.{who}: images must be a tensor, got {type(images).__name__}")
        if images.dim() < 1 or tuple(images.shape[1:]) not in (IMAGE, (size,)):
            raise ValueError(
                f"HAMClassifier.{who}: images must have shape (B, {size}) or (B, {', '.join(map(str, IMAGE))}), "
                f"got {tuple(images.shape)}"
            )

    def start(self, images: Tensor) -> dict[str, Tensor]:
        """The initial state: the images in the image layer (``(B, 784)`` or ``(B, 1, 28, 28)``), zeros elsewhere."""
        self._check_images(images, "start")
        state = self.network.zero_state(len(images), dtype=images.dtype, device=images.device)
        state["image"] = images.reshape(state["image"].shape)
        return state

    def settle(
        self, images: Tensor, gradient: str | None = None, *, strict: bool = False, record: bool = False
    ) -> Trajectory:
        """Relax with the images clamped (``gradient`` as :func:`~assocmem.relax`; ``None``: no graph)."""
        self._check_images(images, "settle")
        c = self.config
        if gradient == "implicit":
            gradient = Implicit(tol=c.adjoint_tol)
        return relax(
            self.network,
            self.start(images),
            clamp=self.clamp,
            inputs=dict(self.biases.items()),
            method=c.method,
            dt=c.dt,
            tol=c.tol,
            t_max=c.t_max,
            gradient=gradient,
            strict=strict,
            record=record,
        )

    def logits(self, images: Tensor, gradient: str | None = None, *, strict: bool = False) -> Tensor:
        """The label layer's state at the fixed point, ``(B, 10)``."""
        return self.settle(images, gradient, strict=strict).states["labels"]
