"""``MemoryBank``: a store of patterns (and values) with ids, retrieved by Model B's update (docs/bank.md).

The bank owns the loop, the backend one association over every row (:class:`~assocmem.engines.bank.backend.Backend`):
``x <- xi^T softmax(beta xi x)`` (docs/reference.md §2), the same loop, argument names and result shape as
:func:`assocmem.retrieve`, whose answers it equals on the local backend. A bank with values keeps ``[xi | v]`` as
its backend's read-out: the patterns update the states, the values are read out by the last association.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from assocmem.checks import require_like, require_tensor, where_not_finite
from assocmem.dynamics.fixed_point import FixedPoint
from assocmem.engines.association import additive_mask, hidden_row_error, hidden_rows, model_b_energy
from assocmem.engines.bank.backend import Backend
from assocmem.engines.bank.local import LocalBackend
from assocmem.engines.bank.rows import STORAGE, Rows
from assocmem.engines.retrieval import DEFAULT_TOL, check_loop

BACKENDS = ("local", "candidates", "sharded")


@dataclass(frozen=True)
class BankRetrieval(FixedPoint):
    """What :meth:`MemoryBank.retrieve` returns when asked for more than the states (a
    :class:`~assocmem.dynamics.fixed_point.FixedPoint`: ``states``, ``energies``, ``steps``, ``converged`` as
    :class:`~assocmem.engines.retrieval.Retrieval`). A candidate backend adds, per query, ``bound``: the largest
    certified weight outside the candidates over the associations it answered, and ``fallback``: whether any of
    them fell back to the exact pass (``None`` for an exact backend)."""

    bound: Tensor | None = None
    fallback: Tensor | None = None


def _finite(t: Tensor, name: str, who: str) -> None:
    where = where_not_finite(t)
    if where is not None:
        raise ValueError(f"{who}: {name} must be finite, found {where}")


class MemoryBank:
    """A store of patterns ``xi (K, d)``, optional values ``v (K, d_v)`` and int64 ids, retrieved by Model B.

    ``backend``: ``"local"`` (the exact chunked engine in this process), ``"candidates"`` (a FAISS index with a
    certificate: :class:`~assocmem.engines.bank.candidates.CandidateBackend`; ``search`` holds its options, such
    as ``index="ivf"`` and ``outside_tol=1e-6``) or ``"sharded"`` (rows spread over a ``torch.distributed``
    group: ``search`` holds ``group`` and ``timeout``). ``storage``: ``None`` (the tensors as given; gradients
    flow to them), ``"float32"``, ``"float64"``, ``"float16"`` or ``"int8"`` (docs/bank.md, "Storage").
    ``ids``: one distinct int per row (default ``0 .. K-1``; on a sharded bank, the rows' positions in the whole
    bank, rank by rank).

    Example: ``MemoryBank(xi).retrieve(xi[:3] + 0.1 * torch.randn(3, xi.shape[1]), beta=8.0)``.
    """

    def __init__(
        self,
        patterns: Tensor,
        values: Tensor | None = None,
        *,
        ids: Tensor | None = None,
        backend: str = "local",
        storage: str | None = None,
        **search: object,
    ) -> None:
        who = "MemoryBank"
        if backend not in BACKENDS:
            raise ValueError(f"{who}: backend must be one of {BACKENDS}, got {backend!r}")
        if storage is not None and storage not in STORAGE:
            raise ValueError(f"{who}: storage must be None or one of {tuple(STORAGE)}, got {storage!r}")
        given = ids is not None
        patterns, values, ids = self._rows(who, patterns, values, ids, None)
        self.storage, self.kind, self.search = storage, backend, dict(search)
        self.ids, self.has_values = ids, values is not None
        if backend == "sharded":
            self.backend = _sharded(ids, patterns, values, search)
            if not given:  # default ids number the whole bank's rows: this rank's start at its first row
                self.ids = self.backend.ids = ids + self.backend.local_range[0]
            return
        local = LocalBackend(
            Rows.store(patterns, storage),
            None if values is None else Rows.store(values, storage),
            joint=True,
        )  # fmt: skip
        self.backend = self._candidates(local, None) if backend == "candidates" else local
        self._follow()

    def _follow(self) -> None:
        """Put the ids in the order a candidate backend put the rows in (clusters contiguous)."""
        perm = getattr(self.backend, "permutation", None)
        if perm is not None:
            self.ids = self.ids[perm]

    @classmethod
    def on(cls, backend: Backend, ids: Tensor, has_values: bool = False) -> MemoryBank:
        """A bank on a backend made elsewhere (``ids``: an int64 tensor, one per row of the whole bank;
        ``has_values``: the backend reads out ``[xi | v]``, as the bank's own backends do; on a sharded backend,
        the ids of this rank's rows)."""
        who = "MemoryBank.on"
        if not isinstance(backend, Backend):
            raise TypeError(
                f"{who}: backend must be an assocmem.engines.bank.Backend, got {type(backend).__name__}"
            )
        ids = require_tensor(ids, "ids", who, floating=False)
        span = getattr(backend, "local_range", None)  # a sharded backend: ids of this rank's rows
        rows = backend.size if span is None else span[1] - span[0]
        if ids.dtype != torch.int64 or ids.shape != (rows,):
            raise ValueError(
                f"{who}: ids must be an int64 tensor of shape ({rows},) (one per row), got {ids.dtype} "
                f"{tuple(ids.shape)}"
            )
        bank = cls.__new__(cls)
        bank.backend, bank.ids, bank.has_values = backend, ids, has_values
        bank.storage, bank.kind, bank.search = None, type(backend).__name__, {}
        return bank

    def _candidates(self, local: LocalBackend, partition: object) -> Backend:
        from assocmem.engines.bank.candidates import CandidateBackend

        return CandidateBackend(local, partition=partition, **self.search)

    # ---------------------------------------------------------------------------------------------- the rows
    @property
    def dim(self) -> int:
        return self.backend.dim

    @property
    def value_dim(self) -> int:
        return self.backend.value_dim - (self.backend.dim if self.has_values else 0)

    def __len__(self) -> int:
        return self.backend.size

    def __repr__(self) -> str:
        return (f"MemoryBank(size={len(self)}, dim={self.dim}, value_dim={self.value_dim}, "
                f"backend={self.kind!r}, storage={self.storage!r})")  # fmt: skip

    def _rows(
        self, who: str, patterns: object, values: object, ids: object, have: Tensor | None
    ) -> tuple[Tensor, Tensor | None, Tensor]:
        patterns = require_tensor(patterns, "patterns", who)
        if patterns.dim() != 2 or patterns.shape[0] == 0 or patterns.shape[1] == 0:
            raise ValueError(
                f"{who}: patterns must have shape (K, d) with K, d > 0, got {tuple(patterns.shape)}"
            )
        if have is not None and patterns.shape[1] != self.dim:
            raise ValueError(
                f"{who}: patterns must have d = {self.dim} columns (the bank's), got {patterns.shape[1]}"
            )
        _finite(patterns, "patterns", who)
        if values is not None or (have is not None and self.has_values):
            if values is None:
                raise ValueError(f"{who}: values are required: this bank stores a value for every pattern")
            values = require_tensor(values, "values", who)
            if values.dim() != 2 or values.shape[0] != patterns.shape[0] or values.shape[1] == 0:
                raise ValueError(
                    f"{who}: values must have shape ({patterns.shape[0]}, d_v) with d_v > 0 (one row per pattern), "
                    f"got {tuple(values.shape)}"
                )
            if have is not None and values.shape[1] != self.value_dim:
                raise ValueError(
                    f"{who}: values must have d_v = {self.value_dim} columns, got {values.shape[1]}"
                )
            require_like(values, "values", patterns, "patterns", who)
            _finite(values, "values", who)
        elif have is not None and values is not None:
            raise ValueError(f"{who}: this bank stores no values; leave values=None")
        start = 0 if have is None or have.numel() == 0 else int(have.max()) + 1
        if ids is None:
            ids = torch.arange(start, start + patterns.shape[0], dtype=torch.int64)
        else:
            ids = require_tensor(ids, "ids", who, floating=False)
            if ids.dtype != torch.int64 or ids.shape != (patterns.shape[0],):
                raise ValueError(
                    f"{who}: ids must be an int64 tensor of shape ({patterns.shape[0]},), got {ids.dtype} "
                    f"{tuple(ids.shape)}"
                )
            if torch.unique(ids).numel() != ids.numel() or (
                have is not None and bool(torch.isin(ids, have).any())
            ):
                raise ValueError(f"{who}: ids must be distinct, and not in the bank already")
        return patterns, values, ids

    def add(self, patterns: Tensor, values: Tensor | None = None, ids: Tensor | None = None) -> Tensor:
        """Add rows (and their values); returns their ids (default: after the largest id in the bank)."""
        who = "MemoryBank.add"
        patterns, values, ids = self._rows(who, patterns, values, ids, self.ids)
        local = self._local(who)
        p = Rows.store(patterns, local.patterns.storage if self.storage else None)
        v = None if values is None else Rows.store(values, local.values.storage if self.storage else None)
        joined = local.joined(p, v)
        if joined is not self.backend and self.backend is not local:
            part = self.backend.partition
            joined = self.backend.rebuilt(joined, None if part is None else part.joined(p))
        self.backend, self.ids = joined, torch.cat([self.ids, ids])
        self._follow()
        return ids

    def remove(self, ids: Tensor) -> None:
        """Remove the rows with these ids (each must be in the bank; at least one row must stay)."""
        who = "MemoryBank.remove"
        ids = require_tensor(ids, "ids", who, floating=False)
        if ids.dtype != torch.int64 or ids.dim() != 1:
            raise ValueError(f"{who}: ids must be a 1-D int64 tensor, got {ids.dtype} {tuple(ids.shape)}")
        unknown = ids[~torch.isin(ids, self.ids)]
        if unknown.numel():
            raise ValueError(f"{who}: ids not in the bank: {unknown[:8].tolist()}")
        keep = ~torch.isin(self.ids, ids)
        if not bool(keep.any()):
            raise ValueError(f"{who}: ids would remove every row; a bank keeps at least one")
        local = self._local(who)
        selected = local.select(keep)
        if self.backend is not local:
            part = self.backend.partition
            selected = self.backend.rebuilt(selected, None if part is None else part.select(keep))
        self.backend, self.ids = selected, self.ids[keep]
        self._follow()

    def _local(self, who: str) -> LocalBackend:
        b = self.backend
        local = b if isinstance(b, LocalBackend) else getattr(b, "local", None)
        if not isinstance(local, LocalBackend):
            raise ValueError(
                f"{who}: the {self.kind} backend holds its rows elsewhere; rebuild or reload the bank"
            )
        return local

    # ------------------------------------------------------------------------------------------ retrieval
    def _prepare(
        self, who: str, queries: object, beta: object, mask: object, name: str = "queries"
    ) -> tuple[Tensor, object, object]:
        queries = require_tensor(queries, name, who)
        if queries.dim() != 2 or queries.shape[1] != self.dim:
            raise ValueError(
                f"{who}: {name} must have shape (B, d) with d = {self.dim}, got {tuple(queries.shape)}"
            )
        _finite(queries, name, who)
        local = self._local_or_none()
        if local is not None:
            require_like(
                queries, name, local.patterns.data if local.patterns.exact else queries, "patterns", who
            )
        if isinstance(beta, Tensor):
            beta = require_tensor(beta, "beta", who)
            if beta.numel() not in (1, queries.shape[0]):
                raise ValueError(
                    f"{who}: a tensor beta must have 1 or B = {queries.shape[0]} entries, got {tuple(beta.shape)}"
                )
            if not bool(((beta > 0) & torch.isfinite(beta)).all()):
                raise ValueError(f"{who}: beta must be positive and finite")
            beta = beta.to(queries.dtype).reshape(-1, 1).expand(queries.shape[0], 1)
        elif isinstance(beta, bool) or not (
            isinstance(beta, (int, float)) and math.isfinite(beta) and beta > 0
        ):
            raise ValueError(f"{who}: beta must be a positive finite number or tensor, got {beta!r}")
        if mask is not None:
            if (
                not isinstance(mask, Tensor)
                or mask.dtype != torch.bool
                or mask.shape != (queries.shape[0], len(self))
            ):
                got = f"{mask.dtype} {tuple(mask.shape)}" if isinstance(mask, Tensor) else type(mask).__name__
                raise ValueError(
                    f"{who}: mask must be a boolean tensor (B, K) = {(queries.shape[0], len(self))}, got {got}"
                )
            if local is not None:
                m = additive_mask(mask, (queries.shape[0], len(self)), queries, who)
                if bool(hidden_rows(m).any()):
                    raise hidden_row_error(who, "mask", m)
                mask = m
        return queries, beta, mask

    def _local_or_none(self) -> LocalBackend | None:
        b = self.backend
        local = b if isinstance(b, LocalBackend) else getattr(b, "local", None)
        return local if isinstance(local, LocalBackend) else None

    def _associate(self, x: Tensor, beta: object, mask: object) -> tuple[Tensor, Tensor, Tensor | None]:
        """One association: ``(out, lse, certified outside weight or None)``."""
        b = self.backend
        if isinstance(b, LocalBackend):
            out, lse = b.exact(x, beta, mask)
            return out, lse, None
        if hasattr(b, "search_additive"):
            s = b.search_additive(x, beta, mask)
            return s.out, s.lse, s.certificate
        span = getattr(b, "local_range", None)  # a sharded backend takes its own columns of the mask
        if mask is not None and span is not None:
            mask = mask[:, span[0] : span[1]]
        out, lse = b.associate(x, beta, mask)
        return out, lse, None

    def retrieve(
        self,
        queries: Tensor,
        beta: float | Tensor = 1.0,
        *,
        steps: int | None = 1,
        max_steps: int = 1000,
        tol: float | None = None,
        record: bool = False,
        mask: Tensor | None = None,
    ) -> Tensor | BankRetrieval:
        """Model B's retrieval from the bank, as :func:`assocmem.retrieve` (docs/reference.md §2).

        ``queries (B, d)``; ``beta`` a positive float or a tensor of 1 or ``B`` entries; ``steps=n``: ``n``
        associations (the last reads the values out); ``steps=None``: until a step moves each query by at most
        ``tol`` (default 1e-6), at most ``max_steps`` updates; ``mask (B, K)`` boolean, ``True``: the row takes
        part (rows in the order of :attr:`ids`; a candidate backend orders them by cluster).
        Returns the states ``(B, d_v)``, or a :class:`BankRetrieval`
        when ``record`` (Model B's energy of every state visited) or the backend certifies its answers.
        """
        who = "MemoryBank.retrieve"
        queries, beta, mask = self._prepare(who, queries, beta, mask)
        check_loop(who, steps, max_steps, tol)
        watch = steps is None or tol is not None
        tol = DEFAULT_TOL if tol is None else tol
        updates = max_steps if steps is None else steps - self.has_values
        d, x, n = self.dim, queries, queries.shape[0]
        active = torch.ones(n, dtype=torch.bool, device=x.device)
        done = torch.zeros(n, dtype=torch.int64, device=x.device)
        moved = torch.full((n,), math.inf, dtype=x.dtype, device=x.device)
        energies, bound, fallback = [], None, None

        def certify(cert: object, who_active: Tensor) -> None:
            nonlocal bound, fallback
            if cert is None:
                return
            b = torch.where(who_active, cert.bound, 0.0)
            f = cert.fallback & who_active
            bound = b if bound is None else torch.maximum(bound, b)
            fallback = f if fallback is None else fallback | f

        for _ in range(updates):
            if watch and not bool(active.any()):
                break
            out, lse, cert = self._associate(x, beta, mask)
            certify(cert, active)
            if record:
                energies.append(model_b_energy(x, lse, beta))
            new = out[:, :d]
            moved = torch.where(active, torch.linalg.vector_norm(new - x, dim=-1), moved)
            x = torch.where(active.unsqueeze(-1), new, x)
            done = done + active
            if watch:
                active = active & (moved > tol)
        result = x
        if self.has_values or record:
            out, lse, cert = self._associate(x, beta, mask)
            certify(cert, torch.ones_like(active))
            if self.has_values:
                result = out[:, d:]
            if record:
                energies.append(model_b_energy(x, lse, beta))
        if not record and bound is None:
            return result
        return BankRetrieval(
            states=result,
            energies=torch.stack(energies) if record else None,
            steps=done,
            converged=(done > 0) & (moved <= tol),
            bound=bound,
            fallback=fallback,
        )

    def energy(self, states: Tensor, beta: float | Tensor = 1.0, *, mask: Tensor | None = None) -> Tensor:
        """Model B's energy ``1/2 |x|^2 - beta^-1 log sum_mu exp(beta xi_mu . x)`` of ``states (B, d)`` over the
        bank (docs/reference.md §2); on a candidate backend the candidates' log-partition, certified as above."""
        states, beta, mask = self._prepare("MemoryBank.energy", states, beta, mask, "states")
        _, lse, _ = self._associate(states, beta, mask)
        return model_b_energy(states, lse, beta)

    # -------------------------------------------------------------------------------------------- files
    def save(self, path: str | Path, *, shard_rows: int | None = None) -> Path:
        """Write the bank to the folder ``path``: safetensors shards and a JSON manifest with checksums, atomic
        (docs/bank.md, "Storage format"). A sharded bank saves on every rank at once, each rank its own rows
        (docs/bank-sharded.md, "Saving"); it reloads on any number of ranks."""
        if hasattr(self.backend, "local_range"):  # rows spread over ranks: every rank writes its own
            from assocmem.engines.bank.sharded_storage import save_sharded

            return save_sharded(self, path, shard_rows)
        from assocmem.engines.bank.storage import save_bank

        return save_bank(self, path, shard_rows=shard_rows)

    @classmethod
    def load(cls, path: str | Path, *, backend: str | None = None, **search: object) -> MemoryBank:
        """The bank saved at ``path`` (checksums verified), on its saved backend or on ``backend``
        (``"sharded"``: this rank's block of rows, on every rank at once; ``search``: ``group``, ``timeout``)."""
        from assocmem.engines.bank.storage import load_backend, read_manifest

        if (backend or read_manifest(path)["backend"]) == "sharded":
            from assocmem.engines.bank.sharded_storage import load_sharded

            return load_sharded(cls, path, search)
        ids, backend_, manifest = load_backend(path, backend=backend, **search)
        bank = cls.on(backend_, ids, manifest["has_values"])
        perm = getattr(backend_, "permutation", None)  # options changed on load: the rows put in a new order
        if perm is not None:
            bank.ids = ids[perm]
        bank.storage, bank.kind = manifest["storage"], backend or manifest["backend"]
        bank.search = backend_.options() if bank.kind == "candidates" else {}
        return bank


def _sharded(ids: Tensor, patterns: Tensor, values: Tensor | None, search: dict) -> Backend:
    """The sharded backend on this rank's rows (reading out ``[xi | v]`` when the bank has values)."""
    from assocmem.engines.bank.sharded import ShardedBackend

    joint = patterns if values is None else torch.cat([patterns, values], 1)
    return ShardedBackend.from_rows(ids, patterns, None if values is None else joint, **search)
