"""Binary associative memories: the Dense Associative Memory of Krotov & Hopfield 2016 and the classical
Hopfield network of 1982 (docs/reference.md §2 and §3).

- :class:`BinaryDAM`: ``E = -sum_mu F(xi_mu . sigma)``; the update of spin ``i`` (ties keep the state) is
  ``sigma_i <- Sign[sum_mu F(xi_mu,i + a_mu) - F(-xi_mu,i + a_mu)]`` with ``a_mu = sum_{j != i} xi_mu,j sigma_j``.
- :class:`ClassicalHopfield`: ``E = -1/2 sum_{i != j} T_ij sigma_i sigma_j`` with ``T = xi^T xi``; the update is
  ``sigma_i <- Sign[sum_{j != i} T_ij sigma_j]`` (ties keep).

The binary DAM is model A of the general network (``L_v = sum |v|``, ``L_h = sum_mu F(h_mu)``) with the hidden
layer integrated out: :meth:`BinaryDAM.energy` equals ``model_a(xi, interaction(F), feature=Abs(),
reduced=True).energy``. With ``F(x) = x^2`` the KH16 update (self-coupling included) is exactly the classical
zero-diagonal update: its field is ``4 sum_mu xi_mu,i a_mu = 4 sum_{j != i} T_ij sigma_j``, so both classes share
one implementation (:mod:`assocmem.engines.binary.sweeps`, on the tables of :mod:`assocmem.engines.binary.tables`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from assocmem.checks import is_count
from assocmem.dynamics.fixed_point import FixedPoint
from assocmem.engines.binary import energy as scaled
from assocmem.engines.binary import sweeps as kernel
from assocmem.engines.binary.tables import interaction_values, scaled_table
from assocmem.lagrangians import AdditiveLagrangian, Polynomial
from assocmem.models.interaction import interaction
from assocmem.models.microscopic import check_patterns

MODES = ("async", "sync")
BACKENDS = ("auto", "numba", "torch")


@dataclass(frozen=True)
class Recall(FixedPoint):
    """What :meth:`BinaryDAM.recall` returns, one entry per cue (a :class:`~assocmem.dynamics.fixed_point.FixedPoint`).

    ``states`` (B, N): final +-1 states, the cues' dtype; ``steps`` (B,) int64: sweeps done (the last one, when
    converged, changed nothing); ``converged`` (B,) bool: a full sweep changed nothing (a fixed point);
    ``energies`` (sweeps + 1, B): the energy after each sweep, row 0 the cues', a finished cue keeping its value
    (only with ``record=True``, else None).
    """


def check_spins(x: object, who: str, name: str, n: int | None = None, values: bool = True) -> Tensor:
    """A 2-D tensor of +-1 (any real dtype); with ``n``, of ``n`` columns. Anything else is a clear error.
    ``values=False`` leaves the values to the caller (:func:`spin_states` checks them as it converts)."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{who}: {name} must be a torch.Tensor of +1 and -1, got {type(x).__name__}")
    if x.dtype == torch.bool or x.is_complex():
        raise TypeError(f"{who}: {name} must be a real tensor of +1 and -1, got dtype {x.dtype}")
    if x.is_meta:
        raise ValueError(f"{who}: {name} is on the meta device (a shape without values)")
    if name == "patterns":  # (K, N) with at least one memory
        check_patterns(x if x.is_floating_point() else x.to(torch.get_default_dtype()), who)
    elif x.dim() != 2:
        raise ValueError(f"{who}: {name} must have shape (batch, N), got {tuple(x.shape)}")
    if n is not None and x.shape[1] != n:
        raise ValueError(
            f"{who}: {name} must have N = {n} columns (one per neuron), got shape {tuple(x.shape)}"
        )
    if values:
        bad = ~((x == 1) | (x == -1))
        if bool(bad.any()):
            raise _not_spins(x, who, name, tuple(int(i) for i in bad.nonzero()[0]))
    return x


def _not_spins(x: Tensor, who: str, name: str, where: tuple[int, ...]) -> ValueError:
    return ValueError(
        f"{who}: {name} must hold only +1 and -1 (binary spins), found {x[where].item()} at index {where}; "
        f"use torch.sign and map zeros to +1 or -1"
    )


#: The dtypes whose check and conversion run in one numba pass on CPU (those NumPy and numba share).
NUMPY_DTYPES = {
    torch.float32: np.float32,
    torch.float64: np.float64,
    torch.int8: np.int8,
    torch.uint8: np.uint8,
    torch.int16: np.int16,
    torch.int32: np.int32,
    torch.int64: np.int64,
}


def spin_states(x: Tensor, who: str, name: str) -> Tensor:
    """A new int8 tensor of the +-1 spins ``x`` (2-D, checked by ``check_spins(..., values=False)``), its values
    checked on the way (the error of :func:`check_spins`).

    On CPU with numba: one pass on the calling thread (:func:`~assocmem.engines.binary.numba_loop.to_spins`).
    PyTorch's comparisons and conversion are several passes, each a parallel region that, on a loaded machine,
    waits at its barrier for a descheduled thread: a recall's share outside the spin loop took 93-285 ms on two
    threads against 11-36 ms on one (docs/binary-dam.md). Other devices and dtypes: PyTorch."""
    if x.device.type == "cpu" and x.dtype in NUMPY_DTYPES and kernel.numba_available():
        from assocmem.engines.binary import numba_loop

        out = torch.empty(x.shape, dtype=torch.int8)
        first = numba_loop.to_spins(x.detach().numpy(), out.numpy())
        if first >= 0:
            raise _not_spins(x, who, name, divmod(first, x.shape[1]))
        return out
    check_spins(x, who, name)
    return x.to(torch.int8, copy=True)


def spins_as(states: Tensor, dtype: torch.dtype) -> Tensor:
    """int8 ``states`` in ``dtype``: on CPU a NumPy conversion on the calling thread (no PyTorch barrier)."""
    if states.device.type == "cpu" and dtype in NUMPY_DTYPES:
        return torch.from_numpy(states.numpy().astype(NUMPY_DTYPES[dtype]))
    return states.to(dtype)


class BinaryNetwork(nn.Module):
    """Shared machinery of the binary networks: ``E = a (-sum_mu F(m_mu)) + e0`` and the KH16 update of ``F``.

    Subclasses fix ``F`` (as an additive Lagrangian), the energy's factor ``a`` and offset ``e0``, and the
    factor that turns the energy difference into the field they report.

    A ``torch.nn.Module``: the patterns are a buffer (in ``state_dict``, moved and converted by ``.to``,
    ``.double()``, ``.cuda()``); the update and energy tables and the patterns' copies the sweeps read are derived
    from them, kept in float64 (and int8 for the numba loop) whatever the patterns' dtype, and follow the
    patterns' device on every ``.to`` and ``load_state_dict``.
    """

    _who = "BinaryNetwork"
    patterns: Tensor

    def __init__(
        self,
        patterns: Tensor,
        lagrangian: AdditiveLagrangian,
        *,
        energy_factor: float = 1.0,
        energy_offset: float = 0.0,
        field_factor: float = 1.0,
    ) -> None:
        super().__init__()
        self.register_buffer("patterns", check_spins(patterns, self._who, "patterns"))
        self.K, self.N = patterns.shape
        self.lagrangian = lagrangian
        self._energy_factor, self._energy_offset, self._field_factor = (
            energy_factor,
            energy_offset,
            field_factor,
        )
        self._build_tables()

    def _build_tables(self) -> None:
        """The update and energy tables (from ``F``, ``N`` and ``K``), on the patterns' device."""
        self._f_values, ss, dd = interaction_values(self.lagrangian, self.N)
        device = self.patterns.device
        self._field_table = scaled_table([ss, dd], self.N, self.K).to(device)
        self._energy_table = scaled_table([self._f_values], self.N, self.K).to(device)
        self._follow_patterns()

    def _follow_patterns(self) -> None:
        """Move the tables to the patterns' device and rebuild the copies of the patterns the sweeps read."""
        device = self.patterns.device
        self._field_table, self._energy_table = self._field_table.to(device), self._energy_table.to(device)
        self._xi64 = self.patterns.to(torch.float64)
        self._xi_t: dict[bool, Tensor] = {}  # the transposed patterns each sweep reads: int8 (numba), float64

    def _apply(self, fn, recurse=True):  # noqa: ANN001 - torch.nn.Module's signature
        """``.to``, ``.double()``, ``.cuda()``...: convert the patterns, then let the derived tensors follow."""
        super()._apply(fn, recurse)
        self._follow_patterns()
        return self

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # noqa: ANN001
        """Check loaded patterns (+-1 spins) before they replace the stored ones, then rebuild what derives."""
        loaded = state_dict.get(prefix + "patterns")
        if isinstance(loaded, Tensor) and loaded.shape == self.patterns.shape:
            check_spins(loaded, self._who, "patterns")
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        self._follow_patterns()

    def _transposed(self, numba: bool) -> Tensor:
        if numba not in self._xi_t:
            self._xi_t[numba] = self._xi64.T.to(torch.int8 if numba else torch.float64).contiguous()
        return self._xi_t[numba]

    @property
    def exact(self) -> bool:
        """True when every field is an exact integer sum (ties ``h_i = 0`` are exact and keep the state)."""
        return self._field_table.exact

    def _spins(self, sigma: object, name: str, values: bool = True) -> Tensor:
        sigma = check_spins(sigma, self._who, name, self.N, values)
        if sigma.device != self.patterns.device:
            raise ValueError(
                f"{self._who}: {name} is on {sigma.device} but the patterns are on {self.patterns.device}; "
                f"move one of them with .to(device)"
            )
        return sigma

    def _out_dtype(self, sigma: Tensor) -> torch.dtype:
        return sigma.dtype if sigma.is_floating_point() else torch.get_default_dtype()

    def _energy(self, agree: Tensor) -> Tensor:
        """The energies of states with agreements ``agree``, float64 (``+-inf`` only past float64)."""
        return scaled.as_float(
            *kernel.sum_table(self._energy_table, agree), self._energy_factor, self._energy_offset
        )

    def energy(self, sigma: Tensor) -> Tensor:
        """The energy of each +-1 state ``(B, N) -> (B,)``, in ``sigma``'s floating dtype (default dtype for
        integer states). Computed from scaled tables in float64 (exact for integer ``F`` while it fits), so it
        never overflows on the way; an energy outside the dtype's range (``x^30`` at ``N = 784`` in float32,
        ``exp`` with a large ``beta`` even in float64) is an error that points to :meth:`slog_energy`."""
        sigma = self._spins(sigma, "sigma")
        parts = kernel.sum_table(self._energy_table, kernel.agreements(self._xi64, sigma))
        e, dtype = scaled.as_float(*parts, self._energy_factor, self._energy_offset), self._out_dtype(sigma)
        out = e.to(dtype)
        if not bool(torch.isfinite(out).all()):
            sign, logabs = scaled.slog(*parts, self._energy_factor, self._energy_offset)
            raise scaled.overflow_error(f"{self._who}.energy", "the energy of state", e, sign, logabs, dtype)
        return out

    def slog_energy(self, sigma: Tensor) -> tuple[Tensor, Tensor]:
        """The energy of each +-1 state as ``(sign, log|E|)``, two float64 tensors ``(B,)`` (as
        ``torch.linalg.slogdet``): ``E = sign * exp(log|E|)``, finite for every state of every network (``F = exp``
        with ``beta = 100`` at ``N = 784`` has ``log|E|`` near 78400). ``log|E| = -inf`` where ``E = 0``.
        Energies compare by ``sign * log|E|`` when they share a sign (the usual case: ``E < 0`` for even or
        rectified ``F``)."""
        sigma = self._spins(sigma, "sigma")
        parts = kernel.sum_table(self._energy_table, kernel.agreements(self._xi64, sigma))
        return scaled.slog(*parts, self._energy_factor, self._energy_offset)

    def field(self, sigma: Tensor) -> Tensor:
        """The field of every spin ``(B, N) -> (B, N)``: the update sets ``sigma_i`` to its sign (0 keeps it)."""
        sigma = self._spins(sigma, "sigma")
        h = kernel.fields(self._field_table, self._xi64, sigma, kernel.agreements(self._xi64, sigma))
        return (h * self._field_factor).to(self._out_dtype(sigma))

    def recall(
        self,
        cues: Tensor,
        mode: str = "async",
        max_steps: int = 100,
        generator: torch.Generator | None = None,
        record: bool = False,
        *,
        backend: str = "auto",
    ) -> Recall:
        """Run the update from each cue ``(B, N)`` until a whole sweep changes nothing or ``max_steps``
        sweeps (a step of this loop is one sweep over all spins; ``record`` keeps the energy after each).

        ``mode="async"``: one spin at a time, in a random order drawn anew for every sweep from ``generator``
        (reproducible: the same generator state gives the same orders and the same states); the energy never
        increases. ``mode="sync"``: every spin from the same state at once (may end in a 2-cycle, then
        ``converged`` is False). ``backend``: ``"numba"`` (CPU, fused loop), ``"torch"`` (any device), or
        ``"auto"`` (numba on CPU when installed). Both make exactly the same moves.

        Example: ``BinaryDAM(xi, F="power", n=3).recall(cues, generator=torch.Generator().manual_seed(0)).states``
        """
        cues = self._spins(cues, "cues", values=False)
        states = spin_states(cues, self._who, "cues")  # checked as converted, a copy the sweeps write
        if record:
            self._check_record_range(self._out_dtype(cues))
        if mode not in MODES:
            raise ValueError(f"{self._who}.recall: mode must be 'async' or 'sync', got {mode!r}")
        if not is_count(max_steps):
            raise ValueError(f"{self._who}.recall: max_steps must be an integer >= 1, got {max_steps!r}")
        if backend not in BACKENDS:
            raise ValueError(f"{self._who}.recall: backend must be one of {BACKENDS}, got {backend!r}")
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(f"{self._who}.recall: generator must be a torch.Generator or None")
        cpu = cues.device.type == "cpu"
        if backend == "numba" and not (cpu and kernel.numba_available()):
            raise ValueError(f"{self._who}.recall: backend='numba' needs CPU tensors and numba installed")
        use_numba = backend == "numba" or (backend == "auto" and cpu and kernel.numba_available())
        agree = kernel.agreements(self._xi64, states)
        b = cues.shape[0]
        sweeps = torch.zeros(b, dtype=torch.int64, device=cues.device)
        converged = torch.zeros(b, dtype=torch.bool, device=cues.device)
        energies = [self._energy(agree)] if record else None
        active = torch.arange(b, device=cues.device)
        for sweep in range(1, max_steps + 1):
            if active.numel() == 0:
                break
            if mode == "sync":
                changed = kernel.sync_sweep(self._field_table, self._xi64, states, agree, active)
            else:
                perms = kernel.random_orders(active.numel(), self.N, generator, cues.device)
                sweep_fn = kernel.async_sweep_numba if use_numba else kernel.async_sweep_torch
                changed = sweep_fn(
                    self._field_table, self._transposed(use_numba), states, agree, active, perms
                )
            if cpu:  # NumPy: PyTorch's boolean indexing is a parallel region (13 ms at a barrier under load)
                act, moved = active.numpy(), changed.numpy()
                sweeps.numpy()[act] = sweep
                converged.numpy()[act[~moved]] = True
                active = torch.from_numpy(act[moved])
            else:
                sweeps[active] = sweep
                converged[active[~changed]] = True
                active = active[changed]
            if energies is not None:
                energies.append(self._energy(agree))
        out = self._out_dtype(cues)
        return Recall(
            states=spins_as(states, cues.dtype),
            energies=torch.stack(energies).to(out) if energies is not None else None,
            steps=sweeps,
            converged=converged,
        )

    def _check_record_range(self, dtype: torch.dtype) -> None:
        """``record=True`` keeps energies in ``dtype``: refuse, before any sweep, a network whose energies can
        pass its range (the bound: ``|a| K max |F| + |e0|``; a recall that succeeds reaches ``F(N)``)."""
        bound = scaled.log2_bound(self._f_values, self.K, self._energy_factor, self._energy_offset)
        if bound >= math.log2(torch.finfo(dtype).max):
            fits64 = bound < math.log2(torch.finfo(torch.float64).max)
            way = "pass the cues as float64 (the energies fit there), or " if fits64 else ""
            raise ValueError(
                f"{self._who}.recall: record=True keeps the energies in {dtype}, and this network's energies reach "
                f"about 10^{bound * math.log10(2):.0f}, outside its range; {way}recall with record=False and "
                f"read the final energies with slog_energy(res.states), which returns (sign, log|E|)"
            )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(K={self.K}, N={self.N}, {self._describe()}, exact={self.exact})"

    def _describe(self) -> str:
        return repr(self.lagrangian)


class BinaryDAM(BinaryNetwork):
    """The binary Dense Associative Memory (KH16, docs/reference.md §3): ``E = -sum_mu F(xi_mu . sigma)``.

    ``patterns`` (K, N) of +-1; ``F`` is ``"power"`` (``x^n``; ``n = 2`` is the classical network with
    self-coupling), ``"rectified"`` (``max(x, 0)^n``), ``"exp"`` (``beta^-1 exp(beta x)``, Demircigil et al.
    2017), a callable, or an additive Lagrangian (see :func:`assocmem.models.interaction`). The update of spin ``i``
    is the sign of the energy difference ``E(sigma_i = -1) - E(sigma_i = +1)`` (self-coupling included, ties keep).

    Example::

        xi = torch.sign(torch.randn(50, 100))
        dam = BinaryDAM(xi, F="rectified", n=3)
        res = dam.recall(torch.where(torch.rand(50, 100) < 0.2, -xi, xi))
        (res.states == xi).all(dim=1)  # every memory recalled
    """

    _who = "BinaryDAM"

    def __init__(
        self,
        patterns: Tensor,
        F: str | Callable[[Tensor], Tensor] | AdditiveLagrangian = "power",
        n: float | None = None,
        beta: float | None = None,
    ) -> None:
        super().__init__(patterns, interaction(F, n, beta, who="BinaryDAM"))
        self.F, self.n, self.beta = F, n, beta


class ClassicalHopfield(BinaryNetwork):
    """The Hopfield network of 1982 (docs/reference.md §2): Hebbian ``T = xi^T xi`` with zero diagonal.

    ``E = -1/2 sum_{i != j} T_ij sigma_i sigma_j``; the update sets ``sigma_i`` to the sign of its local field
    ``h_i = sum_{j != i} T_ij sigma_j`` (ties keep). This is :class:`BinaryDAM` with ``F(x) = x^2`` (whose
    energy difference is ``4 h_i``), run by the same code; :meth:`field` returns ``h_i`` itself.
    """

    _who = "ClassicalHopfield"

    def __init__(self, patterns: Tensor) -> None:
        # E = -1/2 sum_{i != j} T_ij s_i s_j = -1/2 (sum_mu m_mu^2 - K N); the KH16 n = 2 field is 4 h_i.
        super().__init__(patterns, Polynomial(2), energy_factor=0.5, field_factor=0.25)
        self._energy_offset = 0.5 * self.K * self.N

    @property
    def couplings(self) -> Tensor:
        """``T = xi^T xi`` with zero diagonal (N, N), in the patterns' floating dtype (default for integers)."""
        xi = self.patterns.to(self._out_dtype(self.patterns))
        t = xi.T @ xi
        return t.fill_diagonal_(0)

    def _describe(self) -> str:
        return "T=xi^T xi, zero diagonal"
