"""One update of the class neurons of the Dense Associative Memory classifier (KH16; docs/reference.md §3).

The visible neurons are the clamped pixels ``v`` and ``C`` class neurons that start at ``x0`` (KH16: ``-1``).
With every class neuron at ``x0`` the memory ``mu`` receives ``h_mu = xi_mu . v + x0 sum_a xi_mu,a`` (the memory's
overlap with the whole visible state); flipping class neuron ``a`` to ``-x0`` changes it by ``-2 x0 xi_mu,a``. The
class neuron's update is the energy difference of the two states, ``E = -sum_mu F(.)``:

    c_a = tanh(z_a),   z_a = beta sum_mu [ F(h_mu - 2 x0 xi_mu,a) - F(h_mu) ] = beta (E(x_a = x0) - E(x_a = -x0))

which at ``x0 = -1`` is docs/reference.md §3's
``c_a = tanh[beta sum_mu (F(-xi_mu,a x_a + s_mu) - F(xi_mu,a x_a + s_mu))]``.

For a homogeneous ``F`` of degree ``n`` (``x^n``, ``ReP_n``) and ``beta = 1/T^n``, ``beta F(x) = F(x / T)``: the
fields are computed from the scaled overlaps ``hs = h / T`` and shifts ``ds_a = -2 x0 xi_a / T``, so ``beta``
itself (``540^-30`` at ``n = 30``, below float32's range) is never formed and nothing overflows.

:func:`class_fields` takes ``hs (B, K)`` and ``ds (C, K)`` and returns ``z (B, C)``; its backward is written out
(``dz/dhs = F'(hs + ds_a) - F'(hs)``, ``dz/dds_a = F'(hs + ds_a)``) so that neither direction stores the
``(B, C, K)`` tensor. Training uses the same backward in an extended range (:func:`backward_weights`,
:func:`scaled_backward`: each memory's gradient relative to its largest term), since the per-memory normalised
update moves a memory by ``eps`` whatever its gradient's size. All run eagerly in batch chunks (any device) or
fused into loops that never materialise ``(B, C, K)`` (:class:`Kernels`): on CPU tensors the numba loops of
:mod:`assocmem.classifier.fused` for ``ReP_n`` and ``x^n`` of integer ``n`` from 2 to 6 (:func:`fusable`; one pass
each, both reductions of the backward from one evaluation of each term, on every thread), otherwise compiled by
``torch.compile``.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import shutil
import sys
import warnings
from collections.abc import Callable, Iterator

import torch
from torch import Tensor

from assocmem.data.datasets import user_cache_dir
from assocmem.lagrangians import AdditiveLagrangian, Polynomial, RePU

#: Eager evaluation works on batch chunks whose (chunk, C, K) temporaries hold about this many elements (cache-sized).
CHUNK_ELEMENTS = 1 << 19
#: Compiled backward kernels work on batch chunks of about this many (row, memory) elements (cache-sized).
COMPILED_CHUNK_ELEMENTS = 1 << 17


def fields_reference(F: AdditiveLagrangian, hs: Tensor, ds: Tensor) -> Tensor:
    """``z_ba = sum_mu F(hs_b,mu + ds_a,mu) - F(hs_b,mu)``: the class fields, written plainly (differentiable)."""
    return (F.F(hs[:, None, :] + ds) - F.F(hs)[:, None, :]).sum(-1)


def fields_backward(F: AdditiveLagrangian, hs: Tensor, ds: Tensor, gz: Tensor) -> tuple[Tensor, Tensor]:
    """The gradients ``(dL/dhs, dL/dds)`` of the fields for ``gz = dL/dz``, in closed form."""
    slope = F.dF(hs[:, None, :] + ds)  # (B, C, K)
    weighted = gz[:, :, None] * slope
    dhs = (weighted - gz[:, :, None] * F.dF(hs)[:, None, :]).sum(1)
    return dhs, weighted.sum(0)


def _rho_bound(F: AdditiveLagrangian, hs: Tensor, ds: Tensor, log_g: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``(live, rho, bound)`` of :func:`backward_weights` (``rho = 1`` where no term of the memory is live)."""
    high, low = ds.amax(0).clamp_min(0.0), ds.amin(0).clamp_max(0.0)  # the shifts, d = 0 included
    if isinstance(F, RePU):
        rho = torch.relu(hs + high)
    else:
        rho = torch.maximum((hs + high).abs(), (hs + low).abs())
    live = rho > 0  # elsewhere every F' term of the memory is 0 (ReP_n below threshold)
    rho = torch.where(live, rho, 1.0)
    return live, rho, torch.where(live, log_g[:, None] + (F.n - 1) * rho.log(), -math.inf)


def _weights(
    hs: Tensor, live: Tensor, rho: Tensor, bound: Tensor, scale: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    # terms below e^-80 of the memory's largest are kept at e^-80 instead of denormal numbers (slow on CPUs)
    w = torch.where(live, (bound - scale).clamp_min(-80.0).exp(), 0.0)
    inv = 1.0 / rho
    return hs * inv, inv, w


def backward_weights(
    F: AdditiveLagrangian, hs: Tensor, ds: Tensor, log_g: Tensor
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Per-memory scaling of the backward for ``gz_ba = e^log_g_b g_ba`` (``|g| <= 1``): ``(x, inv, w, scale)``.

    ``rho_b,mu`` is the largest ``|argument|`` of ``F'`` in memory mu's terms of sample b (``hs + ds_a`` and
    ``hs``; only positive ones for ``ReP_n``), ``inv = 1/rho``, ``x = hs / rho``; ``log_g_b + (n-1) log rho`` bounds
    the log-magnitude of the terms, ``scale_mu`` is its maximum over the batch and ``w = exp(bound - scale) <= 1``.
    """
    live, rho, bound = _rho_bound(F, hs, ds, log_g)
    scale = bound.amax(0)
    return (*_weights(hs, live, rho, bound, scale), scale)


def bound_scale(F: AdditiveLagrangian, hs: Tensor, ds: Tensor, log_g: Tensor) -> Tensor:
    """``scale (K,)`` of :func:`backward_weights` for these rows (the maximum of the rows' maxima is the batch's)."""
    return _rho_bound(F, hs, ds, log_g)[2].amax(0)


def chunk_weights(
    F: AdditiveLagrangian, hs: Tensor, ds: Tensor, log_g: Tensor, scale: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """``(x, inv, w)`` of :func:`backward_weights` for some rows, given the whole batch's ``scale``."""
    live, rho, bound = _rho_bound(F, hs, ds, log_g)
    return _weights(hs, live, rho, bound, scale)


def scaled_backward(
    F: AdditiveLagrangian, x: Tensor, inv: Tensor, w: Tensor, ds: Tensor, g: Tensor
) -> tuple[Tensor, Tensor]:
    """:func:`fields_backward` for ``gz_ba = e^log_g_b g_ba``, divided per memory by ``e^scale_mu``.

    ``F'`` is homogeneous of degree ``n - 1``, so each term is evaluated at ``x = hs / rho``, ``ds / rho``
    (arguments of order one) and weighted by ``w`` from :func:`backward_weights`: every memory's largest term is
    of order one, whatever the magnitudes of ``gz`` (``(c - t)^59`` at ``m = 30``) and ``F'`` (``(h/T)^29`` at
    ``n = 30``), so a memory's gradient neither under- nor overflows. ``dL/dhs = e^scale dhs``, same for ``dds``.
    """
    slope = F.dF(x[:, None, :] + ds * inv[:, None, :])  # (B, C, K)
    gw = g[:, :, None] * w[:, None, :]
    dhs = (gw * (slope - F.dF(x)[:, None, :])).sum(1)
    return dhs, (gw * slope).sum(0)


class CompileError(RuntimeError):
    """A compiled kernel failed: the run stops rather than switch silently to eager kernels that round differently."""


@functools.cache
def compile_problem() -> str | None:
    """Why ``torch.compile`` cannot build CPU kernels here (no C++ compiler), or ``None`` when it can.

    Decided once, before any kernel runs, from the environment alone (inductor's own compiler search), never from
    an exception: a failure of the compiler that *is* there (a damaged compile cache after a killed run, a bug)
    is an error (:class:`CompileError`), not a reason to change the arithmetic in the middle of a run.
    """
    try:
        from torch._inductor.cpp_builder import get_cpp_compiler
    except ImportError:  # the private API moved: look for the compiler inductor defaults to
        cxx = os.environ.get("CXX", "clang++" if sys.platform == "darwin" else "g++")
        return None if shutil.which(cxx) else f"no C++ compiler ({cxx}) found"
    try:
        get_cpp_compiler()
    except Exception as err:  # inductor's InvalidCxxCompiler, or the compiler does not run
        return f"no working C++ compiler ({type(err).__name__}: {str(err).strip()[:200]})"
    return None


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """PyTorch on one thread inside the block (the count restored after; process-wide, as torch.set_num_threads).

    The classifier's elementwise work runs here: each parallel elementwise operation ends at a barrier that, on a
    loaded machine, waits for a thread the machine has descheduled (an epoch on two threads took 2.5x as long as
    on one, docs/classifier.md). Its compiled kernels are built for one thread whatever the count (:class:`Fused`);
    its matrix products use the threads as row blocks that each thread computes on one (:mod:`.products`)."""
    threads = torch.get_num_threads()
    if threads == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


#: torch.compile's options for the classifier's kernels: loops for one thread, no OpenMP region (see one_thread).
COMPILE_OPTIONS = {"cpp.threads": 1}


def use_compile_cache() -> str:
    """Point torch.compile's cache at ``<user cache>/assocmem/inductor`` unless TORCHINDUCTOR_CACHE_DIR is set; return
    the folder in use. Its compiled kernels then outlive the process and the machine's temporary folder: the
    C++ compilation (~20 s) is paid once per machine and torch version, a later start pays only the tracing."""
    if not os.environ.get("TORCHINDUCTOR_CACHE_DIR"):
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(user_cache_dir() / "inductor")
    return os.environ["TORCHINDUCTOR_CACHE_DIR"]


class Fused:
    """``fn`` compiled by ``torch.compile`` when ``enabled``, else run as it is.

    Whether to compile is decided before the first call (:class:`Kernels`, :func:`compile_problem`); once
    compiling, any failure of the compiled function is raised as a :class:`CompileError` that says what to do.
    Eager and compiled kernels round differently (~1e-6 relative), so falling back in the middle of a run would
    silently break a resumed run's bit-exactness. Compiled kernels loop on one thread (:data:`COMPILE_OPTIONS`)
    and are cached on disk (:func:`use_compile_cache`).
    """

    def __init__(self, fn: Callable[..., object], enabled: bool = False) -> None:
        self.fn, self.enabled = fn, enabled
        self._compiled: Callable[..., object] | None = None

    def __call__(self, *args: object) -> object:
        if not self.enabled:
            return self.fn(*args)
        if self._compiled is None:
            use_compile_cache()
            self._compiled = torch.compile(self.fn, dynamic=None, options=COMPILE_OPTIONS)
        try:
            return self._compiled(*args)
        except torch.cuda.OutOfMemoryError:
            raise
        except Exception as err:
            raise CompileError(
                f"a compiled classifier kernel failed ({type(err).__name__}: {str(err).strip()[:300]}). A damaged "
                f"torch.compile cache (e.g. left by a killed run) is a common cause: delete {_cache_dir()} (or set "
                "TORCHINDUCTOR_CACHE_DIR to a fresh folder) and run again. Eager kernels (--no-compile, "
                "compile=False) work anywhere, but a run must continue with the kernels it started with"
            ) from err


def _cache_dir() -> str:
    try:
        from torch._inductor.runtime.cache_dir_utils import cache_dir

        return cache_dir()
    except Exception:  # the private API moved
        return "torch's inductor cache folder (TORCHINDUCTOR_CACHE_DIR)"


class Kernels:
    """The kernels of :func:`class_fields` and of the training gradient for one interaction function ``F``.

    Each runs eagerly or, with ``compiled=True``, through ``torch.compile`` (:class:`Fused`). The backward kernels
    work on batch chunks: eagerly to bound the ``(chunk, C, K)`` temporaries, compiled so that the ``(chunk, K)``
    rows re-read for each class stay in the CPU's cache (measured 2-3x faster than one pass over the batch).
    """

    def __init__(self, F: AdditiveLagrangian, compiled: bool = False) -> None:
        self.F = F
        #: Whether the CPU work runs in the numba loops of :mod:`.fused` (``compiled`` and :func:`fusable`).
        self.fused = bool(compiled) and fusable(F)
        if compiled and not self.fused:
            use_compile_cache()  # before anything of inductor's reads its cache folder
        if compiled and (problem := compile_problem()) is not None:
            # The numba loops need no C++ compiler; their autograd backward and other devices' work go eager.
            if not self.fused:
                warnings.warn(
                    f"torch.compile cannot build kernels here ({problem}); the classifier runs its eager kernels",
                    RuntimeWarning,
                    stacklevel=3,
                )
            compiled = False
        self._fields = Fused(lambda hs, ds: fields_reference(F, hs, ds), compiled)
        self._backward = Fused(lambda hs, ds, gz: fields_backward(F, hs, ds, gz), compiled)
        self._scale = Fused(lambda hs, ds, lg: bound_scale(F, hs, ds, lg), compiled)
        self._weights = Fused(lambda hs, ds, lg, s: chunk_weights(F, hs, ds, lg, s), compiled)
        self._scaled = Fused(
            lambda x, inv, w, ds, g: _with_total(scaled_backward(F, x, inv, w, ds, g)), compiled
        )

    @property
    def compiled(self) -> bool:
        return self._fields.enabled

    @property
    def kind(self) -> str:
        """``"fused"``, ``"compiled"`` or ``"eager"``: the arithmetic a checkpoint records (they round differently).

        ``"fused"``: the numba loops of :mod:`.fused` on CPU tensors (torch.compile's kernels on other devices)."""
        if self.fused:
            return "fused"
        return "compiled" if self.compiled else "eager"

    @compiled.setter
    def compiled(self, value: bool) -> None:
        self.fused = bool(value) and fusable(self.F)
        for kernel in (self._fields, self._backward, self._scale, self._weights, self._scaled):
            kernel.enabled = bool(value)

    def fuses(self, t: Tensor) -> bool:
        """Whether work on ``t`` runs in the numba loops (fused kernels, a CPU tensor of float32 or float64)."""
        return self.fused and t.device.type == "cpu" and t.dtype in (torch.float32, torch.float64)

    def _rows(self, ds: Tensor) -> int:
        """Batch rows per chunk: (rows, K) operands of 512 KB compiled, (rows, C, K) temporaries of 2 MB eager."""
        per_row = ds.shape[1] if self.compiled else ds.numel()
        return max(8, (COMPILED_CHUNK_ELEMENTS if self.compiled else CHUNK_ELEMENTS) // max(1, per_row))

    def forward(self, hs: Tensor, ds: Tensor) -> Tensor:
        """The fields ``z (B, C)``: :func:`fields_reference` (one pass when compiled, chunks when eager)."""
        if self.fuses(hs):
            from assocmem.classifier import fused

            hs, ds = hs.detach().contiguous(), ds.detach().to(hs.dtype).contiguous()
            z = hs.new_empty(hs.shape[0], ds.shape[0])
            rectified = isinstance(self.F, RePU)
            units = -(-hs.shape[0] // fused.FIELD_ROWS)
            args = (hs.numpy(), ds.numpy(), int(self.F.n), rectified, z.numpy())
            fused.run_units(fused.fields_rows, args, units, torch.get_num_threads())
            return z
        if self.compiled:
            with one_thread():
                return self._fields(hs, ds)
        out = hs.new_empty(hs.shape[0], ds.shape[0])
        step = self._rows(ds)
        for i in range(0, hs.shape[0], step):
            out[i : i + step] = self._fields(hs[i : i + step], ds)
        return out

    def backward(self, hs: Tensor, ds: Tensor, gz: Tensor) -> tuple[Tensor, Tensor]:
        """:func:`fields_backward` on batch chunks."""
        dhs = torch.empty_like(hs)
        dds = torch.zeros_like(ds)
        step = self._rows(ds)
        with one_thread():
            for i in range(0, hs.shape[0], step):
                dhs[i : i + step], chunk_dds = self._backward(hs[i : i + step], ds, gz[i : i + step])
                dds += chunk_dds
        return dhs, dds

    def gradient(
        self, hs: Tensor, ds: Tensor, log_g: Tensor, g: Tensor
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """The training backward for ``gz_ba = e^log_g_b g_ba``: ``(dhs, dds, dhs.sum(0), scale)``, each memory's
        gradient divided by ``e^scale_mu`` (:func:`backward_weights`, :func:`scaled_backward`).

        Two passes: :func:`bound_scale` over the batch, then per batch chunk :func:`chunk_weights` and
        :func:`scaled_backward`, so the weights of a chunk are read back from the cache, never from memory (the
        whole batch's weights, three (B, K) tensors, were)."""
        if self.fuses(hs):
            return self._fused_gradient(hs, ds, log_g, g)
        step = self._rows(ds)
        dhs = torch.empty_like(hs)
        dds = torch.zeros_like(ds)
        total = torch.zeros_like(ds[0])
        with one_thread():
            if (
                not self.compiled
            ):  # eager chunks are small (2 MB temporaries): the weights in one go, as before
                x, inv, w, scale = backward_weights(self.F, hs, ds, log_g)
            else:
                scale = self._scale(hs, ds, log_g)  # a streaming pass: one call
            for i in range(0, hs.shape[0], step):
                j = i + step
                if self.compiled:
                    xc, ic, wc = self._weights(hs[i:j], ds, log_g[i:j], scale)
                else:
                    xc, ic, wc = x[i:j], inv[i:j], w[i:j]
                dhs[i:j], chunk_dds, chunk_total = self._scaled(xc, ic, wc, ds, g[i:j])
                dds += chunk_dds
                total += chunk_total
        return dhs, dds, total, scale

    def _fused_gradient(
        self, hs: Tensor, ds: Tensor, log_g: Tensor, g: Tensor
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """:meth:`gradient` in the numba loops (:func:`.fused.gradient_columns`); ``scale`` in float64."""
        from assocmem.classifier import fused

        hs, ds = hs.detach().contiguous(), ds.detach().to(hs.dtype).contiguous()
        dhs, dds = torch.empty_like(hs), torch.empty_like(ds)
        total = hs.new_empty(hs.shape[1])
        scale = torch.empty(hs.shape[1], dtype=torch.float64)
        lg = log_g.detach().to(torch.float64).contiguous()
        gg = g.detach().to(hs.dtype).contiguous()
        rectified = isinstance(self.F, RePU)
        args = (hs.numpy(), ds.numpy(), lg.numpy(), gg.numpy(), int(self.F.n), rectified)
        outs = (dhs.numpy(), dds.numpy(), total.numpy(), scale.numpy())
        units = -(-hs.shape[1] // fused.GRADIENT_COLUMNS)
        fused.run_units(fused.gradient_columns, args + outs, units, torch.get_num_threads())
        return dhs, dds, total, scale


#: The largest degree ``n`` the fused loops take (:data:`.fused.MAX_POWER`; ``F(y) = base(y)^n``).
FUSED_MAX_DEGREE = 6


def fusable(F: AdditiveLagrangian) -> bool:
    """Whether the numba loops of :mod:`.fused` compute ``F``: ``ReP_n`` or ``x^n`` of integer ``2 <= n <= 6``
    (KH16's degrees on MNIST; larger ``n`` keep torch.compile's kernels, :class:`Kernels`)."""
    n = getattr(F, "n", None)
    return (
        isinstance(F, RePU | Polynomial)
        and isinstance(n, int | float)
        and float(n).is_integer()
        and 2 <= n <= FUSED_MAX_DEGREE
    )


def _with_total(parts: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor, Tensor]:
    """``(dhs, dds, dhs summed over the rows)``: the sum made in the backward's own pass."""
    return parts[0], parts[1], parts[0].sum(0)


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
