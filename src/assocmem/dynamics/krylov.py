"""Batched Krylov solvers for the adjoint of a fixed point: conjugate gradients and restarted GMRES.

A vector is a list of tensors, one per layer, each batch first; the batch holds independent systems (one per
sample), so every inner product, step length and stop test is per sample, and a sample that has converged stops
moving while the others go on. The operator is a callable on such vectors (in :mod:`assocmem.dynamics.implicit`,
Jacobian-vector products of one network evaluation from autograd). Both solvers start at zero and stop once every
sample's residual ``|A x - b|`` (the one they track) is at most its ``goal`` or after ``max_steps`` operator
products; the caller checks the true residual.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

Vector = list[Tensor]
Operator = Callable[[Vector], Vector]


@dataclass(frozen=True)
class Solution:
    x: Vector  #: the solution, one tensor per layer
    products: int  #: operator products used
    breakdown: Tensor  #: per sample, True where CG met a direction of non-positive curvature


def dot(a: Vector, b: Vector) -> Tensor:
    """Per-sample inner product ``sum over layers and units of a * b``, shape ``(batch,)``."""
    out = None
    for s, t in zip(a, b, strict=True):
        d = (s * t).reshape(s.shape[0], -1).sum(1)
        out = d if out is None else out + d
    assert out is not None
    return out


def _scaled(c: Tensor, t: Tensor) -> Tensor:
    return c.reshape((-1,) + (1,) * (t.dim() - 1)) * t


def axpy(c: Tensor, x: Vector, y: Vector) -> Vector:
    """``y + c x`` with a per-sample coefficient ``c`` of shape ``(batch,)``."""
    return [t + _scaled(c, s) for s, t in zip(x, y, strict=True)]


def cg(op: Operator, b: Vector, goal: Tensor, max_steps: int) -> Solution:
    """Conjugate gradients for a symmetric positive semi-definite ``op`` (per sample): ``op(x) = b``.

    A consistent singular system is fine (the iterates stay in the operator's range). A sample whose search
    direction has non-positive curvature ``p . A p <= 0`` is not positive definite: it stops there and is flagged
    in ``breakdown``.
    """
    x = [torch.zeros_like(t) for t in b]
    r = [t.clone() for t in b]
    p = [t.clone() for t in b]
    rr = dot(r, r)
    target = goal * goal
    broken = torch.zeros_like(rr, dtype=torch.bool)
    products = 0
    while products < max_steps:
        active = (rr > target) & ~broken
        if not bool(active.any()):
            break
        ap = op(p)
        products += 1
        curvature = dot(p, ap)
        broken = broken | (active & (curvature <= 0))
        active = active & ~broken
        alpha = torch.where(active, rr / torch.where(active, curvature, 1.0), 0.0)
        x = axpy(alpha, p, x)
        r = axpy(-alpha, ap, r)
        rr_new = dot(r, r)
        beta = torch.where(active, rr_new / torch.where(active, rr, 1.0), 0.0)
        p = axpy(beta, p, r)
        rr = torch.where(active, rr_new, rr)
    return Solution(x, products, broken)


def gmres(op: Operator, b: Vector, goal: Tensor, max_steps: int, restart: int = 20) -> Solution:
    """Restarted GMRES(``restart``) for any non-singular ``op`` (per sample): ``op(x) = b``.

    Each cycle builds an orthonormal Krylov basis by modified Gram-Schmidt and solves the small least-squares
    problem of every sample; the residual norm it returns is the one the cycle minimised.
    """
    x = [torch.zeros_like(t) for t in b]
    products = 0
    r = b
    while products < max_steps:
        beta = dot(r, r).sqrt()
        if not bool((beta > goal).any()):
            break
        safe = torch.where(beta > 0, beta, 1.0)
        basis = [[_scaled(1.0 / safe, t) for t in r]]
        batch = beta.shape[0]
        hess = beta.new_zeros(batch, restart + 1, restart)
        rhs = beta.new_zeros(batch, restart + 1, 1)
        rhs[:, 0, 0] = beta
        y = None
        for j in range(min(restart, max_steps - products)):
            w = op(basis[j])
            products += 1
            for i, v in enumerate(basis):
                h = dot(w, v)
                hess[:, i, j] = h
                w = axpy(-h, v, w)
            h = dot(w, w).sqrt()
            hess[:, j + 1, j] = h
            basis.append([_scaled(torch.where(h > 0, 1.0 / h.clamp_min(1e-300), 0.0), t) for t in w])
            # the pseudo-inverse solves every sample's least-squares problem, also a rank-deficient one (a sample
            # already solved has a zero column) and on every device (lstsq's CUDA driver needs full rank)
            y = torch.linalg.pinv(hess[:, : j + 2, : j + 1]) @ rhs[:, : j + 2]
            residual = (rhs[:, : j + 2] - hess[:, : j + 2, : j + 1] @ y).squeeze(-1).norm(dim=1)
            if not bool((residual > goal).any()):
                break
        assert y is not None
        for i in range(y.shape[1]):
            x = axpy(y[:, i, 0], basis[i], x)
        ax = op(x)
        products += 1
        r = [s - t for s, t in zip(b, ax, strict=True)]
    return Solution(x, products, torch.zeros_like(goal, dtype=torch.bool))
