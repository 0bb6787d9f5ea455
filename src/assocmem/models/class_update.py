"""One update of the class neurons of the Dense Associative Memory classifier (KH16; REFERENCE.md section 3).

The visible neurons are the clamped pixels ``v`` and ``C`` class neurons that start at ``x0`` (KH16: ``-1``).
With every class neuron at ``x0`` the memory ``mu`` receives ``h_mu = xi_mu . v + x0 sum_a xi_mu,a`` (the memory's
overlap with the whole visible state); flipping class neuron ``a`` to ``-x0`` changes it by ``-2 x0 xi_mu,a``. The
class neuron's update is the energy difference of the two states, ``E = -sum_mu F(.)``:

    c_a = tanh(z_a),   z_a = beta sum_mu [ F(h_mu - 2 x0 xi_mu,a) - F(h_mu) ] = beta (E(x_a = x0) - E(x_a = -x0))

which at ``x0 = -1`` is REFERENCE.md's ``c_a = tanh[beta sum_mu (F(-xi_mu,a x_a + s_mu) - F(xi_mu,a x_a + s_mu))]``.

For a homogeneous ``F`` of degree ``n`` (``x^n``, ``ReP_n``) and ``beta = 1/T^n``, ``beta F(x) = F(x / T)``: the
fields are computed from the scaled overlaps ``hs = h / T`` and shifts ``ds_a = -2 x0 xi_a / T``, so ``beta``
itself (``540^-30`` at ``n = 30``, below float32's range) is never formed and nothing overflows.

:func:`class_fields` takes ``hs (B, K)`` and ``ds (C, K)`` and returns ``z (B, C)``; its backward is written out
(``dz/dhs = F'(hs + ds_a) - F'(hs)``, ``dz/dds_a = F'(hs + ds_a)``) so that neither direction stores the
``(B, C, K)`` tensor. The same two functions run eagerly in batch chunks (any device) or compiled by
``torch.compile`` into fused loops (one pass over ``(B, C, K)`` without materialising it).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import torch
from torch import Tensor

from assocmem.lagrangians import AdditiveLagrangian, RePU

#: Eager evaluation works on batch chunks whose (chunk, C, K) temporaries hold at most this many elements.
CHUNK_ELEMENTS = 1 << 21


def fields_reference(F: AdditiveLagrangian, hs: Tensor, ds: Tensor) -> Tensor:
    """``z_ba = sum_mu F(hs_b,mu + ds_a,mu) - F(hs_b,mu)``: the class fields, written plainly (differentiable)."""
    return (F.F(hs[:, None, :] + ds) - F.F(hs)[:, None, :]).sum(-1)


def fields_backward(F: AdditiveLagrangian, hs: Tensor, ds: Tensor, gz: Tensor) -> tuple[Tensor, Tensor]:
    """The gradients ``(dL/dhs, dL/dds)`` of the fields for ``gz = dL/dz``, in closed form."""
    slope = F.dF(hs[:, None, :] + ds)  # (B, C, K)
    weighted = gz[:, :, None] * slope
    dhs = (weighted - gz[:, :, None] * F.dF(hs)[:, None, :]).sum(1)
    return dhs, weighted.sum(0)


def _log_weights(F: AdditiveLagrangian, hs: Tensor, ds: Tensor, log_g: Tensor) -> tuple[Tensor, Tensor]:
    """``rho_b,mu``, the largest ``|argument|`` of ``F'`` in memory mu's terms (0 where ``F' = 0``), clamped to
    float's smallest normal number, and ``log_g_b + (n-1) log rho``: the log-magnitude bound of each term."""
    high, low = ds.amax(0).clamp_min(0.0), ds.amin(0).clamp_max(0.0)  # the shifts, d = 0 included
    if isinstance(F, RePU):
        rho = torch.relu(hs + high)
    else:
        rho = torch.maximum((hs + high).abs(), (hs + low).abs())
    rho = rho.clamp_min(torch.finfo(hs.dtype).tiny)
    return rho, log_g[:, None] + (F.n - 1) * rho.log()


def backward_log_scale(F: AdditiveLagrangian, hs: Tensor, ds: Tensor, log_g: Tensor) -> Tensor:
    """``M_mu = max_b [log_g_b + (n-1) log rho_b,mu]``: the log-magnitude of memory mu's largest term."""
    return _log_weights(F, hs, ds, log_g)[1].amax(0)


def scaled_backward(
    F: AdditiveLagrangian, hs: Tensor, ds: Tensor, g: Tensor, log_g: Tensor, scale: Tensor
) -> tuple[Tensor, Tensor]:
    """:func:`fields_backward` for ``gz_ba = e^log_g_b g_ba``, divided per memory by ``e^scale_mu``.

    ``F'`` is homogeneous of degree ``n - 1``, so each term is evaluated at ``hs / rho``, ``ds / rho`` (arguments
    of order one) and weighted by ``exp(log_g_b + (n-1) log rho_b,mu - scale_mu) <= 1`` with ``scale`` from
    :func:`backward_log_scale`: the largest term of every memory is of order one, whatever the magnitudes of
    ``gz`` (``(c - t)^59`` at ``m = 30``) and ``F'`` (``(h/T)^29`` at ``n = 30``), so nothing that would move a
    memory under- or overflows. ``dL/dhs = e^scale * dhs``, ``dL/dds = e^scale * dds``.
    """
    rho, log_w = _log_weights(F, hs, ds, log_g)
    w = (log_w - scale).exp()
    inv = 1.0 / rho
    x = hs * inv
    slope = F.dF(x[:, None, :] + ds * inv[:, None, :])  # (B, C, K)
    gw = g[:, :, None] * w[:, None, :]
    dhs = (gw * (slope - F.dF(x)[:, None, :])).sum(1)
    return dhs, (gw * slope).sum(0)


class Fused:
    """``fn`` compiled by ``torch.compile`` when ``enabled``, else (or when compiling fails) ``eager``.

    Compiling fails only at the first call, e.g. without a C++ compiler or Triton; the wrapper then warns once and
    runs ``eager`` from then on. Both must compute the same function (the tests check that they agree).
    """

    def __init__(
        self, fn: Callable[..., object], eager: Callable[..., object], enabled: bool = False
    ) -> None:
        self.fn, self.eager, self.enabled = fn, eager, enabled
        self._compiled: Callable[..., object] | None = None

    def __call__(self, *args: object) -> object:
        if self.enabled:
            if self._compiled is None:
                self._compiled = torch.compile(self.fn, dynamic=None)
            try:
                return self._compiled(*args)
            except Exception as err:  # a missing compiler shows only here, at the first call
                warnings.warn(
                    f"torch.compile failed ({type(err).__name__}: {err}); running the eager version",
                    RuntimeWarning,
                    stacklevel=2,
                )
                self.enabled = False
        return self.eager(*args)


class Kernels:
    """The forward and backward kernels of :func:`class_fields` for one interaction function ``F``.

    ``compiled=False`` runs :func:`fields_reference` / :func:`fields_backward` eagerly on batch chunks (bounded
    temporaries); ``compiled=True`` runs them through ``torch.compile`` (:class:`Fused`).
    """

    def __init__(self, F: AdditiveLagrangian, compiled: bool = False) -> None:
        self.F = F
        self.forward = Fused(lambda hs, ds: fields_reference(F, hs, ds), self._forward_chunks, compiled)
        self.backward = Fused(
            lambda hs, ds, gz: fields_backward(F, hs, ds, gz), self._backward_chunks, compiled
        )
        log_scale = lambda hs, ds, lg: backward_log_scale(F, hs, ds, lg)  # noqa: E731  (B, K) temporaries only
        self.log_scale = Fused(log_scale, log_scale, compiled)
        self.scaled_backward = Fused(
            lambda hs, ds, g, lg, sc: scaled_backward(F, hs, ds, g, lg, sc), self._scaled_chunks, compiled
        )

    @property
    def compiled(self) -> bool:
        return self.forward.enabled

    @compiled.setter
    def compiled(self, value: bool) -> None:
        for kernel in (self.forward, self.backward, self.log_scale, self.scaled_backward):
            kernel.enabled = bool(value)

    def _forward_chunks(self, hs: Tensor, ds: Tensor) -> Tensor:
        out = hs.new_empty(hs.shape[0], ds.shape[0])
        step = _chunk(ds)
        for i in range(0, hs.shape[0], step):
            out[i : i + step] = fields_reference(self.F, hs[i : i + step], ds)
        return out

    def _backward_chunks(self, hs: Tensor, ds: Tensor, gz: Tensor) -> tuple[Tensor, Tensor]:
        return self._accumulate(hs, lambda i, j: fields_backward(self.F, hs[i:j], ds, gz[i:j]), ds)

    def _scaled_chunks(
        self, hs: Tensor, ds: Tensor, g: Tensor, log_g: Tensor, scale: Tensor
    ) -> tuple[Tensor, Tensor]:
        return self._accumulate(
            hs, lambda i, j: scaled_backward(self.F, hs[i:j], ds, g[i:j], log_g[i:j], scale), ds
        )

    @staticmethod
    def _accumulate(
        hs: Tensor, part: Callable[[int, int], tuple[Tensor, Tensor]], ds: Tensor
    ) -> tuple[Tensor, Tensor]:
        """Run a backward on batch chunks: ``dhs`` row by row, ``dds`` summed."""
        dhs = torch.empty_like(hs)
        dds = torch.zeros_like(ds)
        step = _chunk(ds)
        for i in range(0, hs.shape[0], step):
            dhs[i : i + step], chunk_dds = part(i, i + step)
            dds += chunk_dds
        return dhs, dds


def _chunk(ds: Tensor) -> int:
    return max(1, CHUNK_ELEMENTS // max(1, ds.numel()))


class _ClassFields(torch.autograd.Function):
    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, hs: Tensor, ds: Tensor, kernels: Kernels) -> Tensor:
        ctx.save_for_backward(hs, ds)
        ctx.kernels = kernels
        return kernels.forward(hs, ds)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: torch.autograd.function.FunctionCtx, gz: Tensor) -> tuple[Tensor, Tensor, None]:
        hs, ds = ctx.saved_tensors
        dhs, dds = ctx.kernels.backward(hs, ds, gz.contiguous())
        return dhs, dds, None


def class_fields(hs: Tensor, ds: Tensor, kernels: Kernels) -> Tensor:
    """The class fields ``z (B, C)`` from scaled overlaps ``hs (B, K)`` and flip shifts ``ds (C, K)``.

    ``z_ba = sum_mu F(hs_b,mu + ds_a,mu) - F(hs_b,mu)`` with ``F = kernels.F``; differentiable in ``hs`` and
    ``ds`` (closed-form backward, checked against autograd of :func:`fields_reference` in the tests).
    """
    return _ClassFields.apply(hs, ds, kernels)
