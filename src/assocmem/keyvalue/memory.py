"""The key-value memory with three-factor plasticity (Tyulmankov, Fang, Vadaparty & Yang, NeurIPS 2021).

docs/reference.md §10. Three layers: an input ``x`` (``d`` units), a hidden layer (``N`` units, the memory slots)
and an output ``y`` (``m`` units). Row ``i`` of the key matrix ``K`` (N, d) holds the synapses from the input to
hidden unit ``i``; column ``i`` of the value matrix ``V`` (m, N) those from hidden unit ``i`` to the output.

- Reading (section 2.1): ``h = f(K x~)``, ``y~ = V h`` with the read-out ``f`` of :mod:`~assocmem.keyvalue.readout`
  (softmax in the paper). It is one step of the two-layer network of §1 with the hidden layer integrated out
  (:func:`~assocmem.keyvalue.preset.key_value_network`).
- Writing (sections 2.2-2.3 and 3.2): the local third factor ``gamma_t`` picks the slot
  (:mod:`~assocmem.keyvalue.third_factor`), the global factor ``q_t`` gates storage, and the rules of
  :class:`~assocmem.keyvalue.plasticity.PlasticityRule` update ``K`` then ``V`` in one shot. A write costs
  ``O(N (d + m))`` per memory whatever the number of items stored: no stored item is visited.

The state (:class:`MemoryState`) holds one memory per batch item; every operation is batched over memories and
returns a new state (writes are pure functions, so meta-learning differentiates through whole episodes).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from assocmem.checks import (
    Guard,
    guard,
    is_count,
    nonfinite_error,
    positive_float,
    require_like,
    require_tensor,
)
from assocmem.keyvalue.plasticity import PlasticityRule
from assocmem.keyvalue.readout import READOUTS, readout_lagrangian
from assocmem.keyvalue.state import (
    MemoryState,
    check_gate,
    check_items,
    check_rule,
    check_state,
    defer_finite,
)
from assocmem.keyvalue.third_factor import LOCAL_FACTORS, random_factor, sequential_factor

#: How the value synapses forget: ``"local"`` (section 2.3: the slot's local factor clears it) or ``"passive"``
#: (section 3.2: every value synapse decays by ``lambda~`` at each storage).
VALUE_RULES = ("local", "passive")


class KeyValueMemory(nn.Module):
    """A key-value memory written by three-factor plasticity and read in one step (docs/reference.md §10).

    ``key_size`` ``d``, ``slots`` ``N`` (hidden units), ``value_size`` ``m`` (default ``d``: autoassociative).
    ``readout``: one of ``"softmax"`` (default, inverse temperature ``beta``), ``"hardmax"``, ``"step"`` (threshold
    ``threshold``), ``"linear"``. ``local_factor``: ``"sequential"`` or ``"random"`` (spike probability ``p``,
    default ``min(1, 4/N)``). ``value_rule``: ``"local"`` or ``"passive"``. ``rule``: the
    :class:`~assocmem.keyvalue.plasticity.PlasticityRule` (default: the designed rule); its parameters are this
    module's parameters.

    Example::

        mem = KeyValueMemory(key_size=40, slots=40)
        xi = torch.sign(torch.randn(8, 30, 40))            # 8 memories, 30 items each
        state = mem.store(mem.init_state(8), xi)           # one-shot writes, q = 1
        out = mem.read(state, xi * (torch.rand_like(xi) > 0.6))  # queries: 60% of the entries set to 0
        (torch.sign(out) == xi).float().mean()              # about 0.999: every item is recalled
    """

    def __init__(
        self,
        key_size: int,
        slots: int,
        value_size: int | None = None,
        *,
        readout: str = "softmax",
        beta: float = 1.0,
        threshold: float = 0.0,
        local_factor: str = "sequential",
        p: float | None = None,
        value_rule: str = "local",
        rule: PlasticityRule | None = None,
    ) -> None:
        super().__init__()
        who = "KeyValueMemory"
        for name, v in (("key_size", key_size), ("slots", slots)):
            if not is_count(v):
                raise ValueError(f"{who}: {name} must be an integer >= 1, got {v!r}")
        if value_size is not None and not is_count(value_size):
            raise ValueError(f"{who}: value_size must be an integer >= 1 or None, got {value_size!r}")
        if readout not in READOUTS:
            raise ValueError(f"{who}: readout must be one of {READOUTS}, got {readout!r}")
        if local_factor not in LOCAL_FACTORS:
            raise ValueError(f"{who}: local_factor must be one of {LOCAL_FACTORS}, got {local_factor!r}")
        if value_rule not in VALUE_RULES:
            raise ValueError(f"{who}: value_rule must be one of {VALUE_RULES}, got {value_rule!r}")
        positive_float(beta, "beta", who)
        if (
            isinstance(threshold, bool)
            or not isinstance(threshold, int | float)
            or not math.isfinite(threshold)
        ):
            raise ValueError(
                f"{who}: threshold (of the step read-out) must be a finite number, got {threshold!r}"
            )
        if p is None:
            p = min(1.0, 4.0 / slots)
        p = positive_float(p, "p", who)
        if p > 1.0:
            raise ValueError(
                f"{who}: p (the spike probability of the random local factor) must be in (0, 1], got {p}"
            )
        if rule is not None and not isinstance(rule, PlasticityRule):
            raise TypeError(f"{who}: rule must be a PlasticityRule or None, got {type(rule).__name__}")
        self.key_size, self.slots = key_size, slots
        self.value_size = key_size if value_size is None else value_size
        self.readout, self.local_factor, self.value_rule, self.p = readout, local_factor, value_rule, p
        self.lagrangian = readout_lagrangian(readout, beta, threshold)
        self.rule = rule if rule is not None else PlasticityRule()

    # ----------------------------------------------------------------- state and checks
    def init_state(
        self, batch: int, *, dtype: torch.dtype | None = None, device: torch.device | str | None = None
    ) -> MemoryState:
        """``batch`` empty memories (``K = 0``, ``V = 0``, no step seen), float32 unless ``dtype`` is given.

        ``batch = 0`` is an empty batch (every read of it is empty, docs/bad-input.md)."""
        who = "KeyValueMemory.init_state"
        if not is_count(batch, 0):
            raise ValueError(f"{who}: batch must be an integer >= 0, got {batch!r}")
        if dtype is not None and not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
            raise TypeError(f"{who}: dtype must be a floating point torch.dtype or None, got {dtype!r}")
        if device is not None and torch.device(device).type == "meta":
            raise ValueError(
                f"{who}: device is meta (shapes without values); a memory state needs a real device"
            )
        dtype = dtype or torch.get_default_dtype()
        return MemoryState(
            torch.zeros(batch, self.slots, self.key_size, dtype=dtype, device=device),
            torch.zeros(batch, self.value_size, self.slots, dtype=dtype, device=device),
            torch.zeros(batch, dtype=torch.int64, device=device),
        )

    # ----------------------------------------------------------------- reading
    def _hidden(self, keys: Tensor, queries: Tensor) -> tuple[Tensor, Tensor]:
        """The scores ``K x`` and the slots' activity ``f(K x)``, both (B, L, N); no checks."""
        scores = torch.matmul(queries, keys.transpose(-1, -2))
        b, n_q, n = scores.shape
        return scores, self.lagrangian.activation(scores.reshape(b * n_q, n)).reshape(b, n_q, n)

    def _read(
        self,
        keys: Tensor,
        values: Tensor | None,
        x: Tensor,
        names: tuple[str, str],
        who: str,
        g: Guard | None,
    ) -> Tensor:
        """``V f(K x)`` (or ``f(K x)`` without ``values``), queueing the check that the scores ``K x`` are finite:
        the hard max and the step read-outs turn NaN into an ordinary-looking activity, so the result alone would
        not show a NaN in the queries or the keys."""
        scores, h = self._hidden(keys, x)
        if g is not None:
            suspects = [(names[0], x), (names[1], keys)]
            overflow = f"the scores K x overflowed {x.dtype}"
            g.defer(~torch.isfinite(scores.detach()), lambda: nonfinite_error(who, suspects, overflow))
        return h if values is None else torch.matmul(h, values.transpose(-1, -2))

    def hidden(self, keys: Tensor, queries: Tensor) -> Tensor:
        """``f(K x)`` for a batch of key matrices (B, N, d) and queries (B, L, d): the slots' activity (B, L, N)."""
        who = "KeyValueMemory.hidden"
        keys = require_tensor(keys, "keys", who)
        queries = require_tensor(queries, "queries", who)
        if keys.dim() != 3 or keys.shape[1] == 0 or keys.shape[2] == 0:
            raise ValueError(f"{who}: keys must have shape (B, N, d) with N, d > 0, got {tuple(keys.shape)}")
        if queries.dim() != 3 or queries.shape[0] != keys.shape[0] or queries.shape[2] != keys.shape[2]:
            raise ValueError(
                f"{who}: queries must have shape ({keys.shape[0]}, L, {keys.shape[2]}) (the keys' B and d), "
                f"got {tuple(queries.shape)}"
            )
        require_like(queries, "queries", keys, "keys", who)
        with guard() as g:
            h = self._read(keys, None, queries, ("queries", "keys"), who, g)
            if g is not None:
                g.check()
        return h

    def _read_checked(
        self, state: object, queries: object, who: str, g: Guard | None, name: str = "queries"
    ) -> tuple[Tensor, Tensor]:
        """The checked read-out: ``(queries, V f(K x~))`` in the queries' shape; ``name``: the queries' name."""
        state = check_state(state, self.slots, self.key_size, self.value_size, who)
        single = isinstance(queries, Tensor) and queries.dim() == 2
        x = check_items(state, queries, name, self.key_size, who, seq=not single)
        out = self._read(
            state.keys, state.values, x.unsqueeze(1) if single else x, (name, "state.keys"), who, g
        )
        return x, out.squeeze(1) if single else out

    def _result(self, g: Guard | None, who: str, out: Tensor, suspects: list[tuple[str, object]]) -> None:
        if g is not None:
            overflow = f"the read-out V f(K x) overflowed {out.dtype}"
            g.result(out, lambda: nonfinite_error(who, suspects, overflow))

    def read(self, state: MemoryState, queries: Tensor) -> Tensor:
        """One-step read-out ``y~ = V f(K x~)``: queries (B, d) -> (B, m), or (B, L, d) -> (B, L, m).

        NaN or Inf in the queries or in the state is an error naming it (docs/bad-input.md)."""
        who = "KeyValueMemory.read"
        with guard() as g:
            x, out = self._read_checked(state, queries, who, g)
            self._result(
                g, who, out, [("queries", x), ("state.keys", state.keys), ("state.values", state.values)]
            )
        return out

    def novelty(self, state: MemoryState, key: Tensor, value: Tensor | None = None) -> Tensor:
        """The fraction of the value's entries whose sign the memory gets wrong when cued with ``key``, (B,).

        A candidate for the global factor (the paper lets novelty control ``q_t`` without giving a formula):
        ``q = (memory.novelty(state, x, y) > 0.1).float()`` stores only what the memory does not already know.
        """
        who = "KeyValueMemory.novelty"
        state, x, y = self._check_item(state, key, value, who)
        with guard() as g:
            if value is not None:
                defer_finite(g, who, "value", y)
            _, out = self._read_checked(state, x, who, g, "key")
            self._result(
                g, who, out, [("key", x), ("state.keys", state.keys), ("state.values", state.values)]
            )
        return (torch.sign(out) != torch.sign(y)).to(out.dtype).mean(dim=1)

    # ----------------------------------------------------------------- writing
    def _check_item(
        self, state: object, key: object, value: object, who: str
    ) -> tuple[MemoryState, Tensor, Tensor]:
        """One item per memory: the state, ``key`` (B, d) and ``value`` (B, m) (the key when ``None``)."""
        state = check_state(state, self.slots, self.key_size, self.value_size, who)
        x = check_items(state, key, "key", self.key_size, who, seq=False)
        if value is None and self.value_size != self.key_size:
            raise ValueError(f"{who}: value is required when value_size ({self.value_size}) != key_size")
        y = x if value is None else check_items(state, value, "value", self.value_size, who, seq=False)
        return state, x, y

    def _write(
        self, state: MemoryState, x: Tensor, y: Tensor, q: Tensor, generator: torch.Generator | None
    ) -> MemoryState:
        """One write (arguments checked): ``x`` (B, d), ``y`` (B, m), ``q`` (B,). No loop over stored items."""
        K, V = state.keys, state.values
        r = {n: t.to(device=K.device, dtype=K.dtype) for n, t in self.rule.named_parameters()}
        if self.local_factor == "sequential":
            gamma = sequential_factor(state.steps, self.slots, K)
        else:
            gamma = random_factor(state.batch, self.slots, self.p, K, generator)
        xs = x.unsqueeze(1)
        h = self._hidden(K, xs)[1].squeeze(1)
        eta_k = (q.unsqueeze(1) * gamma * r["key_rate"]).unsqueeze(2)  # (B, N, 1)
        post = r["key_post"][0] * h + r["key_post"][1]
        pre = r["key_pre"][0] * x + r["key_pre"][1]
        K = K + eta_k * (post.unsqueeze(2) * pre.unsqueeze(1) - K)
        h_new = self._hidden(K, xs)[1].squeeze(1)
        hebb = (r["value_post"][0] * y + r["value_post"][1]).unsqueeze(2) * (
            r["value_pre"][0] * h_new + r["value_pre"][1]
        ).unsqueeze(1)  # (B, m, N)
        if self.value_rule == "local":
            eta_v = (q.unsqueeze(1) * gamma * r["value_rate"]).unsqueeze(1)  # (B, 1, N)
            V = V + eta_v * (hebb - V)
        else:
            lam = (1.0 - q + q * r["value_decay"]).view(-1, 1, 1)
            V = lam * V + (q * r["value_rate"]).view(-1, 1, 1) * hebb
        return MemoryState(K, V, state.steps + 1)

    def write(
        self,
        state: MemoryState,
        key: Tensor,
        value: Tensor | None = None,
        gate: float | Tensor | None = None,
        *,
        generator: torch.Generator | None = None,
    ) -> MemoryState:
        """Store one item per memory: ``key`` (B, d), ``value`` (B, m) (default: the key), ``gate`` ``q >= 0``.

        ``gate`` is a number or a (B,) tensor (default 1). With ``q = 0`` nothing is stored, but the time step
        still counts (the sequential factor's turn moves on, as in the paper's continual task). ``generator``
        drives the random local factor. Returns the new state; ``state`` is unchanged. NaN or Inf in ``key``,
        ``value`` or ``gate`` is an error; a state holding them (from a rule holding them) is refused when read
        (docs/bad-input.md).
        """
        who = "KeyValueMemory.write"
        state, x, y = self._check_item(state, key, value, who)
        with guard() as g:
            q = check_gate(gate, state, (state.batch,), who, g)
            check_rule(self.rule, who)
            defer_finite(g, who, "key", x)
            if value is not None:
                defer_finite(g, who, "value", y)
            if g is not None:
                g.check()
        return self._write(state, x, y, q, generator)

    def _store(
        self,
        state: object,
        keys: object,
        values: object,
        gates: object,
        generator: object,
        who: str,
        g: Guard | None,
        early: bool = True,
    ) -> MemoryState:
        state = check_state(state, self.slots, self.key_size, self.value_size, who)
        x = check_items(state, keys, "keys", self.key_size, who, seq=True)
        if values is None and self.value_size != self.key_size:
            raise ValueError(f"{who}: values are required when value_size ({self.value_size}) != key_size")
        y = x if values is None else check_items(state, values, "values", self.value_size, who, seq=True)
        if y.shape[1] != x.shape[1]:
            raise ValueError(f"{who}: keys hold {x.shape[1]} items per memory but values hold {y.shape[1]}")
        q = check_gate(gates, state, (state.batch, x.shape[1]), who, g)
        check_rule(self.rule, who)
        defer_finite(g, who, "keys", x)
        if values is not None:
            defer_finite(g, who, "values", y)
        if g is not None and early:
            g.check()  # before the writes: a bad item is refused before any work (one wait)
        for t in range(x.shape[1]):
            state = self._write(state, x[:, t], y[:, t], q[:, t], generator)
        return state

    def store(
        self,
        state: MemoryState,
        keys: Tensor,
        values: Tensor | None = None,
        gates: float | Tensor | None = None,
        *,
        generator: torch.Generator | None = None,
    ) -> MemoryState:
        """Write a sequence of items, one time step each: ``keys`` (B, T, d), ``values`` (B, T, m), ``gates``
        broadcastable to (B, T) (default 1). The arguments are checked once (as in :meth:`write`); returns the
        final state (``state`` itself for ``T = 0``)."""
        with guard() as g:
            return self._store(state, keys, values, gates, generator, "KeyValueMemory.store", g)

    def forward(
        self,
        keys: Tensor,
        queries: Tensor,
        values: Tensor | None = None,
        gates: float | Tensor | None = None,
        *,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """The write-then-read episode: store ``keys``/``values`` (B, T, ·) into empty memories, then read the
        ``queries`` (B, L, d); returns (B, L, m). Differentiable in the rule's parameters."""
        who = "KeyValueMemory"
        keys = require_tensor(keys, "keys", who)
        if keys.dim() != 3:
            raise ValueError(f"{who}: keys must have shape (batch, T, d), got {tuple(keys.shape)}")
        state = self.init_state(keys.shape[0], dtype=keys.dtype, device=keys.device)
        with guard() as g:
            state = self._store(
                state, keys, values, gates, generator, who, g, early=False
            )  # one wait: the result's
            x, out = self._read_checked(state, queries, who, g)
            suspects = [("queries", x), ("keys", keys), ("values", values), ("rule", self.rule)]
            self._result(g, who, out, suspects)
        return out

    def extra_repr(self) -> str:
        factor = self.local_factor + (f"(p={self.p:g})" if self.local_factor == "random" else "")
        return (
            f"key_size={self.key_size}, slots={self.slots}, value_size={self.value_size}, "
            f"readout={self.readout} {self.lagrangian!r}, local_factor={factor}, value_rule={self.value_rule}"
        )
