"""The Dense Associative Memory as a classifier (Krotov & Hopfield 2016; docs/reference.md §3).

The visible layer holds ``P`` pixels in ``[-1, 1]`` (clamped to the image) and ``C`` class neurons; ``K`` memories
``xi (K, P + C)`` couple them through the energy ``E = -sum_mu F(xi_mu . sigma)`` of model A. The class neurons
start at ``x0 = -1`` and take one update each, the energy difference of the class neuron at ``-x0`` and at ``x0``
(:mod:`assocmem.classifier.class_update`):

    c_a = tanh( beta sum_mu [ F(h_mu - 2 x0 xi_mu,a) - F(h_mu) ] ),   h_mu = xi_mu,pixels . v + x0 sum_a xi_mu,a

with ``beta = 1/T^n`` for ``F(x) = x^n`` (``"power"``) or ``ReP_n(x) = max(x, 0)^n`` (``"rectified"``). The
predicted class is ``argmax_a c_a`` (``c > 0`` for a single class neuron).

Duality (KH16 section 5): as ``x0 -> 0``, ``h_mu -> xi_mu,pixels . v`` and to first order in the flip
``z_a = 2 |x0| beta sum_mu xi_mu,a F'(xi_mu,pixels . v)``: with ``beta = 1/(2|x0|)`` the classifier is the
feed-forward network ``c = tanh(xi_classes^T F'(xi_pixels v))``, one hidden layer of ``K`` units with weights
``xi`` in and out and activation ``f = F'`` (``ReP_n`` energy <-> ``n ReP_(n-1)`` activation; ``n = 2`` <-> ReLU).
:meth:`DAMClassifier.to_feedforward` returns it as a torch.nn model.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from assocmem.checks import (
    guard,
    is_count,
    nonfinite_error,
    positive_float,
    require_tensor,
    where_not_finite,
)
from assocmem.classifier.class_update import Kernels, class_fields
from assocmem.classifier.products import addmm_rows
from assocmem.lagrangians import AdditiveLagrangian, Polynomial, RePU
from assocmem.models.interaction import interaction

#: Test images are evaluated in chunks of this many rows by :meth:`DAMClassifier.predict`.
EVAL_CHUNK = 5000


class Activation(nn.Module):
    """``f(x) = F'(x)``: the hidden activation of the feed-forward network dual to the classifier."""

    def __init__(self, F: AdditiveLagrangian) -> None:
        super().__init__()
        self.F = F

    def forward(self, x: Tensor) -> Tensor:
        return self.F.dF(x)

    def extra_repr(self) -> str:
        return f"F'={self.F!r}"


class DAMClassifier(nn.Module):
    """KH16's one-step classifier: memories ``xi (K, P + C)``, class update ``c = tanh(beta dE)``.

    ``memories`` is the number ``K`` (initialised ``N(init_mean, init_std)``, KH16: ``N(-0.3, 0.3)``, drawn with
    ``generator``) or a tensor ``(K, pixels + classes)``. ``F`` is ``"rectified"`` (``ReP_n``, KH16's choice) or
    ``"power"`` (``x^n``, integer ``n``); ``temperature`` ``T`` sets ``beta = 1/T^n``; ``class_state`` is the
    class neurons' initial value ``x0`` (``-1``). ``compile=True`` runs the class update in fused loops (numba on
    CPU for integer ``n`` from 2 to 6, ``torch.compile`` otherwise; compiled once, then cached on disk), else
    eagerly.

    Example::

        model = DAMClassifier(2000, n=3, temperature=30.0)
        c = model(images)            # images (B, 784) in [-1, 1] -> class neurons (B, 10) in (-1, 1)
        labels = model.predict(images)
    """

    def __init__(
        self,
        memories: int | Tensor,
        pixels: int = 784,
        classes: int = 10,
        *,
        n: float = 3,
        F: str | AdditiveLagrangian = "rectified",
        temperature: float = 1.0,
        class_state: float = -1.0,
        init_mean: float = -0.3,
        init_std: float = 0.3,
        generator: torch.Generator | None = None,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
        compile: bool = False,
    ) -> None:
        super().__init__()
        for name, value in (("pixels", pixels), ("classes", classes)):
            if not is_count(value):
                raise ValueError(f"DAMClassifier: {name} must be a positive int, got {value!r}")
        self.pixels, self.classes = pixels, classes
        if isinstance(F, str):
            if F not in ("power", "rectified"):
                raise ValueError(
                    f"DAMClassifier: F must be 'power' or 'rectified' (homogeneous, so beta = 1/T^n folds into "
                    f"F(x/T)), got {F!r}"
                )
            self.interaction = interaction(F, n, who="DAMClassifier")
        elif isinstance(F, Polynomial | RePU):
            self.interaction = F
        else:
            raise TypeError(
                f"DAMClassifier: F must be 'power', 'rectified', Polynomial(n) or RePU(n), got {F!r}"
            )
        self.kind = "power" if isinstance(self.interaction, Polynomial) else "rectified"
        self.n = self.interaction.n
        self.temperature = positive_float(temperature, "temperature", "DAMClassifier")
        self.class_state = float(class_state)
        if not (-float("inf") < self.class_state < 0):
            raise ValueError(
                f"DAMClassifier: class_state (the class neurons' initial value x0) must be negative and finite, "
                f"got {class_state!r}"
            )
        width = pixels + classes
        if isinstance(memories, Tensor):
            if memories.dim() != 2 or memories.shape[1] != width or memories.shape[0] < 1:
                raise ValueError(
                    f"DAMClassifier: memories must have shape (K, pixels + classes) = (K, {width}), got "
                    f"{tuple(memories.shape)}"
                )
            if not memories.is_floating_point():
                raise TypeError(f"DAMClassifier: memories must be floating point, got {memories.dtype}")
            memories = require_tensor(memories, "memories", "DAMClassifier")
            found = where_not_finite(memories.detach())
            if found is not None:
                raise ValueError(
                    f"DAMClassifier: memories holds NaN or Inf ({found}); every value must be finite"
                )
            xi = memories.detach().to(dtype=dtype or memories.dtype, device=device).clone()
        else:
            if not is_count(memories):
                raise ValueError(
                    f"DAMClassifier: memories must be a positive int K or a tensor, got {memories!r}"
                )
            xi = torch.empty(memories, width, dtype=dtype or torch.get_default_dtype(), device=device)
            with torch.no_grad():
                xi.normal_(init_mean, init_std, generator=generator)
        self.memories = nn.Parameter(xi)
        self.kernels = Kernels(self.interaction, compiled=compile)

    @property
    def num_memories(self) -> int:
        return self.memories.shape[0]

    @property
    def beta(self) -> float:
        """``beta = 1/T^n`` (may underflow to 0.0 as a Python float at large ``n``; the model never uses it)."""
        return self.temperature ** (-self.n)

    def extra_repr(self) -> str:
        return (
            f"memories={self.num_memories}, pixels={self.pixels}, classes={self.classes}, F={self.kind}, "
            f"n={self.n:g}, temperature={self.temperature:g}, class_state={self.class_state:g}"
        )

    def _visible(self, images: Tensor) -> Tensor:
        if not isinstance(images, Tensor):
            raise TypeError(f"DAMClassifier: images must be a torch.Tensor, got {type(images).__name__}")
        if images.is_meta:
            require_tensor(images, "images", "DAMClassifier", floating=False)
        if images.dim() < 2 or math.prod(images.shape[1:]) != self.pixels:
            raise ValueError(
                f"DAMClassifier: images must have shape (batch, {self.pixels}) or (batch, *shape) with "
                f"{self.pixels} pixels per image, got {tuple(images.shape)}"
            )
        if not images.is_floating_point():
            raise TypeError(
                f"DAMClassifier: images must be floating point in [-1, 1], got {images.dtype} "
                "(convert uint8 images with assocmem.classifier.to_pixels)"
            )
        if images.dtype != self.memories.dtype or images.device != self.memories.device:
            raise TypeError(
                f"DAMClassifier: images ({images.dtype}, {images.device}) must match the memories "
                f"({self.memories.dtype}, {self.memories.device}); use images.to(model.memories)"
            )
        return images.reshape(images.shape[0], self.pixels)

    def scaled_inputs(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """``hs = h / T`` ``(B, K)`` and ``ds = -2 x0 xi_classes^T / T`` ``(C, K)``: one matrix product (in row
        blocks claimed by the threads, :func:`.products.addmm_rows`, unless autograd records it)."""
        v = self._visible(images)
        xi = self.memories
        pixels, classes = xi[:, : self.pixels], xi[:, self.pixels :]
        x0, inv_t = self.class_state, 1.0 / self.temperature
        if torch.is_grad_enabled() and (xi.requires_grad or v.requires_grad):  # autograd: one plain product
            hs = torch.addmm(classes.sum(1), v, pixels.T, beta=x0 * inv_t, alpha=inv_t)
        else:  # the same product in row blocks claimed by the threads (.products)
            hs = v.new_empty(v.shape[0], xi.shape[0])
            threads = torch.get_num_threads()
            addmm_rows(classes.sum(1), v, pixels.T, beta=x0 * inv_t, alpha=inv_t, out=hs, threads=threads)
        return hs, (classes.T * (-2.0 * x0 * inv_t)).contiguous()

    def fields(self, images: Tensor) -> Tensor:
        """``z = beta (E(x_a = x0) - E(x_a = -x0))`` ``(B, C)``, the argument of the class neurons' tanh.

        NaN or Inf in the fields is an error naming where they come from (``images``, the memories, or an
        overflow of the fields themselves), checked once per call (docs/bad-input.md)."""
        with guard() as g:
            hs, ds = self.scaled_inputs(images)
            z = class_fields(hs, ds, self.kernels)
            if g is not None:
                g.result(z, lambda: self._not_finite(images))
        return z

    def _not_finite(self, images: Tensor) -> ValueError:
        overflow = (
            f"the class fields overflow {self.memories.dtype} although the images and memories are finite "
            f"(F = {self.kind}, n = {self.n:g}, temperature = {self.temperature:g}): raise the temperature or "
            f"use float64"
        )
        return nonfinite_error("DAMClassifier", [("images", images), ("memories", self.memories)], overflow)

    def forward(self, images: Tensor) -> Tensor:
        """The class neurons after one update, ``c = tanh(z)`` ``(B, C)``."""
        return torch.tanh(self.fields(images))

    @staticmethod
    def labels(z: Tensor) -> Tensor:
        """The decision rule: labels ``(B,)`` from class fields or class neurons ``(B, C)``, ``argmax_a z_a``
        (``z > 0`` for one class neuron). :meth:`predict` and the training loop's error both use it. A NaN in
        ``z`` has no label: an error (``argmax`` would pick it)."""
        z = require_tensor(z, "z", "DAMClassifier.labels")
        if z.dim() != 2 or z.shape[1] == 0:
            raise ValueError(
                f"DAMClassifier.labels: z must have shape (batch, classes), got {tuple(z.shape)}"
            )
        with guard() as g:
            if g is not None:
                g.defer(
                    torch.isnan(z), lambda: ValueError("DAMClassifier.labels: z holds NaN: no label to give")
                )
                g.check()
        return (z[:, 0] > 0).long() if z.shape[1] == 1 else z.argmax(1)

    @torch.no_grad()
    def predict(self, images: Tensor) -> Tensor:
        """Predicted labels ``(B,)``: ``argmax_a z_a`` (``z > 0`` for one class neuron), in chunks."""
        self._visible(images)
        out = []
        with guard() as g:  # one check per chunk, naming the caller's whole images
            for i in range(0, images.shape[0], EVAL_CHUNK):
                z = self.fields(images[i : i + EVAL_CHUNK])
                if g is not None:
                    g.result(z, lambda: self._not_finite(images))
                out.append(self.labels(z))
        return torch.cat(out) if out else torch.empty(0, dtype=torch.long, device=images.device)

    @torch.no_grad()
    def error(self, images: Tensor, labels: Tensor) -> float:
        """The fraction of ``images`` whose predicted label differs from ``labels``."""
        if labels.shape != images.shape[:1]:
            raise ValueError(
                f"DAMClassifier.error: labels must have shape ({images.shape[0]},), got {tuple(labels.shape)}"
            )
        if labels.numel() == 0:
            raise ValueError("DAMClassifier.error: no images given")
        return float((self.predict(images) != labels.to(images.device)).float().mean())

    def to_feedforward(self) -> nn.Sequential:
        """The dual feed-forward network ``tanh(W2 F'(W1 v))`` (KH16 section 5), a plain torch.nn model.

        ``W1 = xi_pixels / T`` and ``W2 = -2 x0 xi_classes^T / T``: the class update expanded to first order in
        the flip of the class neuron, at ``x0 -> 0``. For ``beta = 1/(2|x0|)`` (``T = (2|x0|)^(1/n)``) it is
        ``tanh(xi_classes^T F'(xi_pixels v))`` whatever ``x0``, and the classifier tends to it as ``x0 -> 0``.
        The layers are copies: training one model does not change the other.
        """
        with torch.no_grad():
            xi = self.memories
            inv_t, x0 = 1.0 / self.temperature, self.class_state
            hidden = nn.Linear(self.pixels, self.num_memories, bias=False, dtype=xi.dtype, device=xi.device)
            hidden.weight.copy_(xi[:, : self.pixels] * inv_t)
            out = nn.Linear(self.num_memories, self.classes, bias=False, dtype=xi.dtype, device=xi.device)
            out.weight.copy_(xi[:, self.pixels :].T * (-2.0 * x0 * inv_t))
        return nn.Sequential(hidden, Activation(self.interaction), out, nn.Tanh())
