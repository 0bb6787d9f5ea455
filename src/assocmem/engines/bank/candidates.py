"""Candidate search with a certificate: a FAISS index proposes rows, they are scored exactly, and the weight of
every row not scored is bounded (docs/bank.md; the bound: :mod:`assocmem.engines.bank.certificate`).

Three indexes:

- ``"flat"``: FAISS's exact inner-product top ``k`` (``IndexFlatIP``, a float32 copy of the rows); the ``k``-th
  score bounds every row not returned.
- ``"ivf"``: the inverted file of :class:`~assocmem.engines.bank.partition.Partition` (FAISS's k-means, the rows
  kept in the bank's own storage, no copy): the clusters are visited in the order of their bounds ``u_c``, first
  ``nprobe`` of them, then four times as many each round while the certificate exceeds ``outside_tol``, up to
  ``max_probe``; every row of a visited cluster is scored, and each cluster not visited is a part of the bound.
- ``"hnsw"``: FAISS's graph index (``IndexHNSWFlat``, inner product, a float32 copy of the rows) proposes its
  ``k`` best; an approximate search certifies nothing by itself, so the bound comes from the cluster partition
  kept beside it: the clusters are then visited as for ``"ivf"``, the graph's candidates already counted, and each
  unvisited cluster bounds its rows the graph did not return.

Where the certificate still exceeds ``outside_tol``, that query is answered by the exact pass over every row
(:class:`~assocmem.engines.bank.local.LocalBackend`) and its :class:`Certificate` says so (``fallback``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from assocmem.engines.association import additive_mask
from assocmem.engines.bank.backend import Backend
from assocmem.engines.bank.certificate import Certificate, log_outside, outside_bound, rounding_slack
from assocmem.engines.bank.local import LocalBackend
from assocmem.engines.bank.partition import Partition, require_faiss

INDEXES = ("flat", "ivf", "hnsw")


@dataclass(frozen=True)
class Search:
    """One candidate association: ``out (B, d_v)``, ``lse (B,)``, the :class:`Certificate`, and (when asked)
    the rows scored for each query (``None`` where the exact pass answered)."""

    out: Tensor
    lse: Tensor
    certificate: Certificate
    candidates: list[Tensor | None] | None = None


class CandidateBackend(Backend):
    """A FAISS index proposes candidates, scored exactly; the weight of the rest is certified (:class:`Backend`).

    ``local``: the rows (a :class:`~assocmem.engines.bank.local.LocalBackend`, which also answers the exact
    pass); ``index``: ``"flat"``, ``"ivf"`` or ``"hnsw"``; ``k``: candidates of a flat or graph search;
    ``clusters``: k-means clusters of the partition (default ``sqrt(K)``); ``nprobe``, ``max_probe``: clusters
    visited first and at most (default ``64 nprobe``); ``outside_tol``: the largest certified outside weight
    answered without the exact pass; ``hnsw_m``, ``ef_search``: the graph's degree and search breadth;
    ``seed``: k-means' seed;
    ``partition``: a partition made before (saved with the bank). Differentiable in the queries and ``beta``.

    The clustered indexes hold the rows in cluster order, so that a cluster is read as one contiguous block:
    :attr:`permutation` is the order they were put in (``None``: as given); a
    :class:`~assocmem.engines.bank.MemoryBank` reorders its ids alike.
    """

    def __init__(
        self,
        local: LocalBackend,
        index: str = "ivf",
        *,
        k: int = 64,
        clusters: int | None = None,
        nprobe: int = 8,
        max_probe: int | None = None,
        outside_tol: float = 1e-6,
        hnsw_m: int = 32,
        ef_search: int = 128,
        seed: int = 0,
        partition: Partition | None = None,
        graph: object | None = None,
    ) -> None:
        if index not in INDEXES:
            raise ValueError(f"CandidateBackend: index must be one of {INDEXES}, got {index!r}")
        self.faiss = require_faiss()
        self.local, self.index, self.k, self.nprobe, self.outside_tol = local, index, k, nprobe, outside_tol
        self.hnsw_m, self.ef_search, self.seed = hnsw_m, ef_search, seed
        self.size, self.dim, self.value_dim = local.size, local.dim, local.value_dim
        self.clusters = clusters or max(1, round(math.sqrt(self.size)))
        self.max_probe = max_probe
        self.partition = partition
        self._norm: Tensor | None = None
        if index != "flat" and partition is None:
            self.partition = Partition.build(local.patterns, self.clusters, seed)
        self.permutation: Tensor | None = (
            None  # the order this backend put the given rows in (None: as given)
        )
        if self.partition is not None and not self.partition.contiguous:
            self.permutation = self.partition.order
            self.local = local = local.select(self.permutation)
            self.partition = self.partition.select(self.permutation)
        self.graph = graph if graph is not None else self._graph()

    def _graph(self) -> object | None:
        if self.index == "ivf":
            return None
        faiss = self.faiss
        if self.index == "flat":
            g = faiss.IndexFlatIP(self.dim)
        else:
            g = faiss.IndexHNSWFlat(self.dim, self.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        p = self.local.patterns
        for lo in range(0, p.size, 1 << 18):
            g.add(np.ascontiguousarray(p.block(lo, lo + (1 << 18), torch.float32).detach().numpy()))
        return g

    def options(self) -> dict[str, object]:
        """The options that remake this backend on the same rows (saved in a bank's manifest)."""
        return {"index": self.index, "k": self.k, "clusters": self.clusters, "nprobe": self.nprobe,
                "max_probe": self.max_probe, "outside_tol": self.outside_tol, "hnsw_m": self.hnsw_m,
                "ef_search": self.ef_search, "seed": self.seed}  # fmt: skip

    def rebuilt(self, local: LocalBackend, partition: Partition | None) -> CandidateBackend:
        """The same options on other rows (after an add or a remove): the partition given, the FAISS index remade."""
        return CandidateBackend(local, partition=partition, **self.options())

    def associate(
        self, queries: Tensor, beta: float | Tensor, mask: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Candidates scored exactly, the rest certified (:meth:`search`): ``(out (B, d_v), lse (B,))``."""
        s = self.search(queries, beta, mask)
        return s.out, s.lse

    def search(
        self,
        queries: Tensor,
        beta: float | Tensor,
        mask: Tensor | None = None,
        *,
        keep_candidates: bool = False,
    ) -> Search:
        """The association of ``queries (B, d)`` with its :class:`Certificate` (``mask`` boolean ``(B, size)``)."""
        m = additive_mask(mask, (queries.shape[0], self.size), queries, "CandidateBackend.search")
        return self.search_additive(queries, beta, m, keep_candidates)

    def search_additive(
        self, queries: Tensor, beta: float | Tensor, mask: Tensor | None, keep_candidates: bool = False
    ) -> Search:
        """:meth:`search` with ``mask`` already additive (or ``None``)."""
        b = queries.shape[0]
        betas = (
            beta.reshape(-1).expand(b)
            if isinstance(beta, Tensor)
            else torch.full((b,), float(beta), dtype=torch.float64)
        )
        seeds, kth = self._seeds(queries) if self.graph is not None else (None, None)
        outs, lses, bounds, scored, kept = [], [], [], [], []
        for i in range(b):
            q, m = queries[i], None if mask is None else mask[i]
            if self.index == "flat":
                o, ls, w, n, rows = self._flat(q, betas[i], m, seeds[i], kth[i])
            else:
                o, ls, w, n, rows = self._clusters(q, betas[i], m, None if seeds is None else seeds[i])
            outs.append(o)
            lses.append(ls)
            bounds.append(w)
            scored.append(n)
            kept.append(rows)
        dtype = queries.dtype
        out = torch.stack(outs) if b else queries.new_zeros(0, self.value_dim)
        lse = torch.stack(lses) if b else queries.new_zeros(0)
        bound = torch.tensor(bounds, dtype=torch.float64)
        fallback = bound > self.outside_tol
        if bool(fallback.any()):
            exact_out, exact_lse = self.local.exact(
                queries[fallback], betas[fallback, None].to(dtype) if isinstance(beta, Tensor) else beta,
                None if mask is None else mask[fallback],
            )  # fmt: skip
            out = out.index_put((fallback,), exact_out)
            lse = lse.index_put((fallback,), exact_lse)
        cert = Certificate(
            bound=torch.where(fallback, 0.0, bound),
            fallback=fallback,
            scored=torch.where(fallback, self.size, torch.tensor(scored, dtype=torch.int64)),
        )
        cands = (
            [None if f else r for f, r in zip(fallback.tolist(), kept, strict=True)]
            if keep_candidates
            else None
        )
        return Search(out, lse, cert, cands)

    def _seeds(self, queries: Tensor) -> tuple[list[Tensor], list[float]]:
        """The index's ``k`` best rows of each query (FAISS, float32) and the smallest of their FAISS scores."""
        if self.index == "hnsw":
            self.graph.hnsw.efSearch = max(self.ef_search, self.k)
        k = min(self.k, self.size)
        x = np.ascontiguousarray(queries.detach().float().cpu().numpy())
        scores, found = self.graph.search(x, k)
        rows = [torch.from_numpy(r[r >= 0]).to(torch.int64) for r in found]
        return rows, [
            float(s[r >= 0].min()) if (r >= 0).any() else math.inf for s, r in zip(scores, found, strict=True)
        ]

    def _score(self, query: Tensor, beta: Tensor, xi: Tensor, rows: Tensor, mask: Tensor | None) -> Tensor:
        """Exact scores ``beta xi . q (+ mask)`` of the rows ``xi`` (numbers ``rows``) in the query's dtype."""
        z = (xi @ query) * beta.to(query.dtype)
        return z if mask is None else z + mask[rows]

    def _read(self, z: Tensor, xi: Tensor, rows: Tensor) -> tuple[Tensor, Tensor]:
        """``softmax(z) V[rows]`` and ``logsumexp(z)`` (``xi``: those rows' patterns)."""
        lse = torch.logsumexp(z, 0)
        w = torch.exp(z - lse) if bool(torch.isfinite(lse)) else torch.zeros_like(z)
        return w @ self.local.read(xi, rows), lse

    def _clusters(
        self, query: Tensor, beta: Tensor, mask: Tensor | None, seeds: Tensor | None
    ) -> tuple[Tensor, Tensor, float, int, Tensor]:
        """One query by clusters (``"ivf"``, ``"hnsw"``): ``(out, lse, bound, rows scored, the rows)``. The rows
        are held in cluster order (:attr:`permutation`), so a cluster is a contiguous block."""
        p, pat, dtype = self.partition, self.local.patterns, query.dtype
        u = p.bounds(query, beta)
        ranked = torch.argsort(u, descending=True)
        if seeds is None:
            seeds = torch.zeros(0, dtype=torch.int64)
        seed_clusters = p.labels[seeds]
        seen_per = torch.bincount(seed_clusters, minlength=u.shape[0])
        seed_xi = pat.take(seeds, dtype)
        seed_z = self._score(query, beta, seed_xi, seeds, mask)
        probe, most = min(self.nprobe, u.shape[0]), min(self.max_probe or 64 * self.nprobe, u.shape[0])
        inside = torch.zeros(u.shape[0], dtype=torch.bool)
        xis, zs, rowss, done = [], [], [], 0
        while True:
            for lo, hi in p.spans(ranked[done:probe]):
                rows = torch.arange(lo, hi)
                xi = pat.block(lo, hi, dtype)
                xis.append(xi)
                rowss.append(rows)
                zs.append(self._score(query, beta, xi, rows, mask))
            inside[ranked[done:probe]] = True
            done = probe
            keep = ~inside[seed_clusters]
            z = torch.cat([*zs, seed_z[keep]])
            log_s = torch.logsumexp(z.detach().double(), 0)
            left = torch.where(inside, 0, p.counts - seen_per)
            bound = float(outside_bound(log_s, log_outside(left, u)))
            if bound <= self.outside_tol or probe >= most:
                break
            probe = min(4 * probe, most)
        rows = torch.cat([*rowss, seeds[keep]])
        out, lse = self._read(z, torch.cat([*xis, seed_xi[keep]]), rows)
        return out, lse, bound, rows.shape[0], rows

    def _flat(
        self, query: Tensor, beta: Tensor, mask: Tensor | None, rows: Tensor, kth: float
    ) -> tuple[Tensor, Tensor, float, int, Tensor]:
        """One query by the flat index's exact top ``k``, the ``k``-th score bounding the rest."""
        xi = self.local.patterns.take(rows, query.dtype)
        z = self._score(query, beta, xi, rows, mask)
        log_s = torch.logsumexp(z.detach().double(), 0)
        left = self.size - rows.shape[0]
        if left == 0:
            bound = 0.0 if bool(torch.isfinite(log_s)) else 1.0
        else:
            q = query.detach().double()
            norm = torch.linalg.vector_norm(q)
            kth = torch.as_tensor(kth, dtype=torch.float64)
            top = self._max_norm() * norm
            u = beta.detach().double() * (kth + rounding_slack(self.dim, torch.float32, top) + rounding_slack(
                self.dim, query.dtype, top))  # fmt: skip
            bound = float(outside_bound(log_s, math.log(left) + u))
        out, lse = self._read(z, xi, rows)
        return out, lse, bound, rows.shape[0], rows

    def _max_norm(self) -> Tensor:
        """``max_mu |xi_mu|`` (computed once)."""
        if self._norm is None:
            self._norm = self.local.patterns.norms().max()
        return self._norm
