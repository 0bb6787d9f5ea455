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

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from assocmem.checks import is_count, positive_float
from assocmem.keyvalue.plasticity import PlasticityRule
from assocmem.keyvalue.readout import READOUTS, readout_lagrangian
from assocmem.keyvalue.third_factor import LOCAL_FACTORS, random_factor, sequential_factor

#: How the value synapses forget: ``"local"`` (section 2.3: the slot's local factor clears it) or ``"passive"``
#: (section 3.2: every value synapse decays by ``lambda~`` at each storage).
VALUE_RULES = ("local", "passive")


@dataclass(frozen=True)
class MemoryState:
    """The synapses of a batch of independent memories.

    ``keys`` (B, N, d): ``K``; ``values`` (B, m, N): ``V``; ``steps`` (B,) int64: the time steps each memory has
    seen (the sequential third factor's turn is ``steps mod N``).
    """

    keys: Tensor
    values: Tensor
    steps: Tensor

    @property
    def batch(self) -> int:
        return self.keys.shape[0]


def _tensor(x: object, name: str, who: str) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"{who}: {name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{who}: {name} must be a floating-point tensor, got dtype {x.dtype}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{who}: {name} contains NaN or infinite entries")
    return x


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
        if readout == "softmax":
            positive_float(beta, "beta", who)
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
        """``batch`` empty memories (``K = 0``, ``V = 0``, no step seen), float32 unless ``dtype`` is given."""
        if not is_count(batch):
            raise ValueError(f"KeyValueMemory.init_state: batch must be an integer >= 1, got {batch!r}")
        dtype = dtype or torch.get_default_dtype()
        return MemoryState(
            torch.zeros(batch, self.slots, self.key_size, dtype=dtype, device=device),
            torch.zeros(batch, self.value_size, self.slots, dtype=dtype, device=device),
            torch.zeros(batch, dtype=torch.int64, device=device),
        )

    def _check_state(self, state: object, who: str) -> MemoryState:
        if not isinstance(state, MemoryState):
            raise TypeError(
                f"{who}: state must be a MemoryState (from init_state), got {type(state).__name__}"
            )
        b = state.keys.shape[0]
        want = {"keys": (b, self.slots, self.key_size), "values": (b, self.value_size, self.slots)}
        for name, shape in want.items():
            got = tuple(getattr(state, name).shape)
            if got != shape:
                raise ValueError(f"{who}: state.{name} has shape {got}, expected {shape} for this memory")
        return state

    def _check_items(
        self, state: MemoryState, tensor: object, name: str, width: int, who: str, seq: bool
    ) -> Tensor:
        x = _tensor(tensor, name, who)
        b = state.batch
        shape = (b, "T", width) if seq else (b, width)
        if x.dim() != len(shape) or x.shape[0] != b or x.shape[-1] != width:
            raise ValueError(f"{who}: {name} must have shape {shape}, got {tuple(x.shape)}")
        if x.dtype != state.keys.dtype or x.device != state.keys.device:
            raise TypeError(
                f"{who}: {name} is {x.dtype} on {x.device} but the memory state is {state.keys.dtype} on "
                f"{state.keys.device}; convert one of them with .to()"
            )
        return x

    def _check_gate(self, gate: object, state: MemoryState, lead: tuple[int, ...], who: str) -> Tensor:
        like = state.keys
        if gate is None:
            return torch.ones(lead, dtype=like.dtype, device=like.device)
        name = "gate" if len(lead) == 1 else "gates"
        try:
            q = torch.as_tensor(gate, dtype=like.dtype, device=like.device)
        except (TypeError, ValueError, RuntimeError):
            raise TypeError(
                f"{who}: {name} must be a number or a tensor, got {type(gate).__name__}"
            ) from None
        if not bool(torch.isfinite(q).all()) or bool((q < 0).any()):
            raise ValueError(f"{who}: {name} (the global third factor q) must be finite and >= 0")
        # a tensor has one entry per memory (and per item): no trailing-dimension broadcasting, which would
        # silently read a (B,) tensor as (T,) when B == T
        if q.dim() not in (0, len(lead)) or any(s not in (1, n) for s, n in zip(q.shape, lead, strict=False)):
            raise ValueError(
                f"{who}: {name} must be a number or a tensor of shape {lead} (or with 1 for a shared entry), "
                f"got shape {tuple(q.shape)}"
            )
        return q.expand(lead)

    # ----------------------------------------------------------------- reading
    def hidden(self, keys: Tensor, queries: Tensor) -> Tensor:
        """``f(K x)`` for a batch of key matrices (B, N, d) and queries (B, L, d): the slots' activity (B, L, N)."""
        scores = torch.matmul(queries, keys.transpose(-1, -2))
        b, n_q, n = scores.shape
        return self.lagrangian.activation(scores.reshape(b * n_q, n)).reshape(b, n_q, n)

    def read(self, state: MemoryState, queries: Tensor) -> Tensor:
        """One-step read-out ``y~ = V f(K x~)``: queries (B, d) -> (B, m), or (B, L, d) -> (B, L, m)."""
        who = "KeyValueMemory.read"
        state = self._check_state(state, who)
        single = isinstance(queries, Tensor) and queries.dim() == 2
        x = self._check_items(state, queries, "queries", self.key_size, who, seq=not single)
        x = x.unsqueeze(1) if single else x
        out = torch.matmul(self.hidden(state.keys, x), state.values.transpose(-1, -2))
        return out.squeeze(1) if single else out

    def novelty(self, state: MemoryState, key: Tensor, value: Tensor | None = None) -> Tensor:
        """The fraction of the value's entries whose sign the memory gets wrong when cued with ``key``, (B,).

        A candidate for the global factor (the paper lets novelty control ``q_t`` without giving a formula):
        ``q = (memory.novelty(state, x, y) > 0.1).float()`` stores only what the memory does not already know.
        """
        y = key if value is None else value
        out = self.read(state, key)
        y = self._check_items(state, y, "value", self.value_size, "KeyValueMemory.novelty", seq=False)
        return (torch.sign(out) != torch.sign(y)).to(out.dtype).mean(dim=1)

    # ----------------------------------------------------------------- writing
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
        h = self.hidden(K, xs).squeeze(1)
        eta_k = (q.unsqueeze(1) * gamma * r["key_rate"]).unsqueeze(2)  # (B, N, 1)
        post = r["key_post"][0] * h + r["key_post"][1]
        pre = r["key_pre"][0] * x + r["key_pre"][1]
        K = K + eta_k * (post.unsqueeze(2) * pre.unsqueeze(1) - K)
        h_new = self.hidden(K, xs).squeeze(1)
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
        drives the random local factor. Returns the new state; ``state`` is unchanged.
        """
        who = "KeyValueMemory.write"
        state = self._check_state(state, who)
        x = self._check_items(state, key, "key", self.key_size, who, seq=False)
        if value is None and self.value_size != self.key_size:
            raise ValueError(f"{who}: value is required when value_size ({self.value_size}) != key_size")
        y = x if value is None else self._check_items(state, value, "value", self.value_size, who, seq=False)
        q = self._check_gate(gate, state, (state.batch,), who)
        return self._write(state, x, y, q, generator)

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
        broadcastable to (B, T) (default 1). The arguments are checked once; returns the final state."""
        who = "KeyValueMemory.store"
        state = self._check_state(state, who)
        x = self._check_items(state, keys, "keys", self.key_size, who, seq=True)
        if values is None and self.value_size != self.key_size:
            raise ValueError(f"{who}: values are required when value_size ({self.value_size}) != key_size")
        y = (
            x
            if values is None
            else self._check_items(state, values, "values", self.value_size, who, seq=True)
        )
        if y.shape[1] != x.shape[1]:
            raise ValueError(f"{who}: keys hold {x.shape[1]} items per memory but values hold {y.shape[1]}")
        q = self._check_gate(gates, state, (state.batch, x.shape[1]), who)
        for t in range(x.shape[1]):
            state = self._write(state, x[:, t], y[:, t], q[:, t], generator)
        return state

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
        if not isinstance(keys, Tensor) or keys.dim() != 3:
            raise ValueError(
                f"KeyValueMemory: keys must be a (batch, T, d) tensor, got {getattr(keys, 'shape', type(keys))}"
            )
        state = self.init_state(keys.shape[0], dtype=keys.dtype, device=keys.device)
        state = self.store(state, keys, values, gates, generator=generator)
        return self.read(state, queries)

    def extra_repr(self) -> str:
        factor = self.local_factor + (f"(p={self.p:g})" if self.local_factor == "random" else "")
        return (
            f"key_size={self.key_size}, slots={self.slots}, value_size={self.value_size}, "
            f"readout={self.readout} {self.lagrangian!r}, local_factor={factor}, value_rule={self.value_rule}"
        )
