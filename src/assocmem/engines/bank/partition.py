"""The cluster partition of a bank's rows: FAISS's k-means makes the clusters; each keeps its centroid, its
members (contiguous in :attr:`Partition.order`) and its radius, the bound of its rows' scores (docs/bank.md).

A cluster ``c`` with centroid ``m_c`` and radius ``r_c = max_{mu in c} |xi_mu - m_c|`` bounds the score of each
of its rows by ``u_c = beta (q . m_c + |q| r_c)`` (Cauchy-Schwarz; :mod:`assocmem.engines.bank.certificate`).
The centroids and radii are float64; a row added later joins the nearest centroid and widens its radius if it
must; a row removed leaves the radius as it was (still a bound).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from assocmem.engines.bank.certificate import rounding_slack
from assocmem.engines.bank.rows import Rows

#: Rows assigned to their clusters at once.
ASSIGN_BLOCK = 1 << 18

#: Training points per centroid for FAISS's k-means (a random sample of the rows beyond that).
POINTS_PER_CENTROID = 64


def require_faiss() -> object:
    """The ``faiss`` module, or an ImportError that names the package and the extra that installs it."""
    try:
        import faiss
    except ImportError as err:
        raise ImportError(
            "the candidate backend needs FAISS: pip install 'assocmem[bank]' (the faiss-cpu package)"
        ) from err
    return faiss


class Partition:
    """``centroids (n, d)`` and ``radii (n,)`` (float64), ``labels (K,)`` (int64: each row's cluster),
    ``order (K,)``: the rows sorted by cluster, cluster ``c`` at ``order[offsets[c]:offsets[c + 1]]``."""

    def __init__(self, centroids: Tensor, radii: Tensor, labels: Tensor) -> None:
        self.centroids, self.radii, self.labels = centroids, radii, labels
        self.order = torch.argsort(labels, stable=True)
        counts = torch.bincount(labels, minlength=centroids.shape[0])
        self.counts = counts
        self.offsets = torch.cat([torch.zeros(1, dtype=torch.int64), counts.cumsum(0)])
        self.centroid_norms = torch.linalg.vector_norm(centroids, dim=1)
        #: Whether the rows are already in cluster order (every cluster a contiguous block).
        self.contiguous = bool((labels[1:] >= labels[:-1]).all())

    @classmethod
    def build(cls, rows: Rows, clusters: int, seed: int = 0, niter: int = 10) -> Partition:
        """FAISS's k-means with ``clusters`` centroids on (a sample of) ``rows``, then every row assigned."""
        faiss = require_faiss()
        clusters = max(1, min(clusters, rows.size))
        n = min(rows.size, clusters * POINTS_PER_CENTROID)
        g = torch.Generator().manual_seed(seed)
        sample = torch.randperm(rows.size, generator=g)[:n] if n < rows.size else torch.arange(rows.size)
        train = np.ascontiguousarray(rows.take(sample, torch.float32).detach().numpy())
        km = faiss.Kmeans(rows.dim, clusters, niter=niter, seed=seed, verbose=False, min_points_per_centroid=1,
                          max_points_per_centroid=POINTS_PER_CENTROID)  # fmt: skip
        km.train(train)
        centroids = torch.from_numpy(km.centroids).to(torch.float64)
        labels, radii = cls._assign(rows, centroids, km.index, faiss)
        return cls(centroids, radii, labels)

    @staticmethod
    def _assign(rows: Rows, centroids: Tensor, index: object, faiss: object) -> tuple[Tensor, Tensor]:
        labels = torch.empty(rows.size, dtype=torch.int64)
        radii = torch.zeros(centroids.shape[0], dtype=torch.float64)
        for lo in range(0, rows.size, ASSIGN_BLOCK):
            hi = min(lo + ASSIGN_BLOCK, rows.size)
            x = rows.block(lo, hi, torch.float64).detach()
            _, found = index.search(np.ascontiguousarray(x.float().numpy()), 1)
            lab = torch.from_numpy(found[:, 0]).to(torch.int64)
            labels[lo:hi] = lab
            dist = torch.linalg.vector_norm(x - centroids[lab], dim=1)
            radii.scatter_reduce_(0, lab, dist, "amax")
        return labels, radii

    def joined(self, rows: Rows) -> Partition:
        """The partition with ``rows`` appended: each joins its nearest centroid, whose radius widens if need be."""
        faiss = require_faiss()
        index = faiss.IndexFlatL2(self.centroids.shape[1])
        index.add(np.ascontiguousarray(self.centroids.float().numpy()))
        labels, radii = self._assign(rows, self.centroids, index, faiss)
        return Partition(self.centroids, torch.maximum(self.radii, radii), torch.cat([self.labels, labels]))

    def select(self, keep: Tensor) -> Partition:
        """The partition of the rows ``keep`` (a boolean mask or row numbers; radii kept: still bounds)."""
        return Partition(self.centroids, self.radii, self.labels[keep])

    def bounds(self, query: Tensor, beta: Tensor) -> Tensor:
        """``u_c = beta (q . m_c + |q| r_c)`` for every cluster, raised by the rounding of the scores, ``(n,)``
        (float64; ``query (d,)``, ``beta`` a 0-d tensor)."""
        q = query.detach().double()
        norm = torch.linalg.vector_norm(q)
        cn = self.centroid_norms
        slack = rounding_slack(q.shape[0], query.dtype, norm * (cn + self.radii))
        return beta.detach().double() * (self.centroids @ q + norm * self.radii + slack)

    def spans(self, clusters: Tensor) -> list[tuple[int, int]]:
        """The rows of ``clusters`` as ``(lo, hi)`` blocks (the rows in cluster order: :attr:`contiguous`)."""
        lo, hi = self.offsets[clusters].tolist(), self.offsets[clusters + 1].tolist()
        return [(a, b) for a, b in zip(lo, hi, strict=True) if b > a]
