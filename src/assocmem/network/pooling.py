"""Average pooling as a linear synapse (Krotov 2021; docs/reference.md §4).

Energy ``E = -g_post . pool(g_pre)``: the bottom-up drive into ``post`` is the average of ``g_pre`` over each
window; the top-down drive into ``pre`` is the adjoint ``pool^T(g_post)``, which spreads every pooled value back
over its window with the same weight ``1/k`` (``k`` units per window). Pooling has no weights of its own: it is a
fixed convolution, one channel at a time, with a kernel of ``1/k``. Layers are ``(C, L)`` or ``(C, H, W)``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from torch import Tensor
from torch.nn import functional as TF

from assocmem.network.conv import spatial_tuple
from assocmem.network.synapse import Synapse

_POOL = {1: TF.avg_pool1d, 2: TF.avg_pool2d}
_CONV_T = {1: TF.conv_transpose1d, 2: TF.conv_transpose2d}


def _sum_slices(slices: list[Tensor]) -> Tensor:
    """The sum of equally shaped views, in a new tensor (never written into a view of the input)."""
    acc = slices[0] + slices[1] if len(slices) > 1 else slices[0].clone()
    for t in slices[2:]:
        acc += t
    return acc


class AvgPoolSynapse(Synapse):
    """Average pooling synapse: energy ``-g_post . pool(g_pre)``, its adjoint carrying the feedback.

    ``kernel_size``, ``stride`` (default: the kernel, non-overlapping windows) and ``padding`` are as for
    ``torch.nn.functional.avg_pool2d``; padded units count as zeros in every average (the map stays linear, so the
    adjoint is exact). The spatial rank (1 or 2) is taken from the ``pre`` layer when the synapse joins a
    :class:`~assocmem.Network`; ``post`` must have the pooled shape, with the same channels.

    Example: ``AvgPoolSynapse("features", "pooled", 2)`` joins a ``(16, 24, 24)`` layer to a ``(16, 12, 12)`` one.
    """

    def __init__(
        self,
        pre: str,
        post: str,
        kernel_size: int | Sequence[int],
        stride: int | Sequence[int] | None = None,
        padding: int | Sequence[int] = 0,
        name: str | None = None,
    ) -> None:
        super().__init__(pre, post, name)
        if self.recurrent:
            raise ValueError(
                f"AvgPoolSynapse {self.name!r}: pre and post must be different layers, got {pre!r} twice"
            )
        for arg, value in (("kernel_size", kernel_size), ("stride", stride), ("padding", padding)):
            if value is None:
                continue
            nd = 1 if isinstance(value, int) else len(value) if isinstance(value, Sequence) else 0
            if nd not in (1, 2):
                raise ValueError(
                    f"AvgPoolSynapse: {arg} must be an int or a sequence of 1 or 2 ints, got {value!r}"
                )
            spatial_tuple(value, nd, arg, 0 if arg == "padding" else 1, "AvgPoolSynapse")
        self._args = (kernel_size, stride, padding)
        self.nd = 0  # spatial rank, known once bound
        self.kernel_size: tuple[int, ...] = ()
        self.stride: tuple[int, ...] = ()
        self.padding: tuple[int, ...] = ()
        self.output_padding: tuple[int, ...] = ()

    def output_shape(self, pre_shape: Sequence[int]) -> tuple[int, ...]:
        """The ``post`` layer shape pooling produces from a ``pre`` layer of shape ``pre_shape``."""
        pre_shape = tuple(pre_shape)
        nd = len(pre_shape) - 1
        if nd not in (1, 2):
            raise ValueError(
                f"AvgPoolSynapse {self.name!r}: layer {self.pre!r} must have shape (C, L) or (C, H, W); it has "
                f"shape {pre_shape}"
            )
        kernel_size, stride, padding = self._args
        k = spatial_tuple(kernel_size, nd, "kernel_size", 1, "AvgPoolSynapse")
        s = k if stride is None else spatial_tuple(stride, nd, "stride", 1, "AvgPoolSynapse")
        p = spatial_tuple(padding, nd, "padding", 0, "AvgPoolSynapse")
        if any(2 * pi > ki for pi, ki in zip(p, k, strict=True)):
            raise ValueError(f"AvgPoolSynapse {self.name!r}: padding {p} must be at most half the kernel {k}")
        out = [(n + 2 * pi - ki) // si + 1 for n, ki, si, pi in zip(pre_shape[1:], k, s, p, strict=True)]
        if min(out) < 1:
            raise ValueError(
                f"AvgPoolSynapse {self.name!r}: kernel {k} does not fit layer {self.pre!r} of shape {pre_shape} "
                f"with padding {p}"
            )
        return (pre_shape[0], *out)

    def bind(self, shapes: Mapping[str, tuple[int, ...]]) -> None:
        pre_shape, post_shape = tuple(shapes[self.pre]), tuple(shapes[self.post])
        expected = self.output_shape(pre_shape)
        if post_shape != expected:
            raise ValueError(
                f"AvgPoolSynapse {self.name!r}: layer {self.post!r} has shape {post_shape} but pooling layer "
                f"{self.pre!r} {pre_shape} produces {expected}"
            )
        nd = len(pre_shape) - 1
        kernel_size, stride, padding = self._args
        self.nd = nd
        self.kernel_size = spatial_tuple(kernel_size, nd, "kernel_size", 1, "AvgPoolSynapse")
        self.stride = (
            self.kernel_size if stride is None else spatial_tuple(stride, nd, "stride", 1, "AvgPoolSynapse")
        )
        self.padding = spatial_tuple(padding, nd, "padding", 0, "AvgPoolSynapse")
        # The adjoint must restore the pre layer's exact size (the last window may leave a remainder uncovered).
        self.output_padding = tuple(
            n - ((m - 1) * s - 2 * p + k)
            for n, m, k, s, p in zip(
                pre_shape[1:], expected[1:], self.kernel_size, self.stride, self.padding, strict=True
            )
        )
        super().bind(shapes)

    @property
    def tiles(self) -> bool:
        """Whether the windows tile the layer (stride = kernel, no padding): then both directions are strided
        sums and copies, several times faster on CPU than ``avg_pool2d`` and a transposed convolution
        (benchmarks/ham_step.py)."""
        return self.stride == self.kernel_size and not any(self.padding)

    def drive(self, target: str, source: Tensor) -> Tensor:
        if not self.nd:
            raise RuntimeError(
                f"AvgPoolSynapse {self.name!r} has not joined a network yet (its spatial rank comes from there)"
            )
        if target == self.post:
            if self.tiles:
                return self._tile_means(source)
            return _POOL[self.nd](source, self.kernel_size, self.stride, self.padding, False, True)
        if target == self.pre:
            if self.tiles:
                return self._tile_spread(source)
            c = source.shape[1]
            kernel = source.new_full((c, 1, *self.kernel_size), 1.0 / math.prod(self.kernel_size))
            return _CONV_T[self.nd](source, kernel, None, self.stride, self.padding, self.output_padding, c)
        raise KeyError(f"AvgPoolSynapse {self.name!r} does not touch layer {target!r}")

    def _tile_means(self, x: Tensor) -> Tensor:
        """``pool`` for tiling windows: sums of strided views (rows first, whose inner runs are contiguous)."""
        b, c = x.shape[:2]
        k = self.kernel_size
        if self.nd == 2:
            h, w = x.shape[2] // k[0], x.shape[3] // k[1]
            rows = x[:, :, : h * k[0]].view(b, c, h, k[0], x.shape[3])
            acc = _sum_slices([rows[:, :, :, i] for i in range(k[0])])
            cols = acc[..., : w * k[1]].view(b, c, h, w, k[1])
        else:
            w = x.shape[2] // k[0]
            cols = x[..., : w * k[0]].view(b, c, w, k[0])
        return _sum_slices([cols[..., j] for j in range(k[-1])]).mul_(1.0 / math.prod(k))

    def _tile_spread(self, y: Tensor) -> Tensor:
        """``pool^T`` for tiling windows: each pooled value times ``1/k``, copied into every unit of its window
        (units past the last window get zero)."""
        b, c = y.shape[:2]
        k = self.kernel_size
        scaled = y * (1.0 / math.prod(k))
        size = (b, c, *(n * ki + r for n, ki, r in zip(y.shape[2:], k, self.output_padding, strict=True)))
        out = y.new_zeros(size) if any(self.output_padding) else y.new_empty(size)
        if self.nd == 2:
            h, w = y.shape[2:]
            tiles = out[:, :, : h * k[0], : w * k[1]].view(b, c, h, k[0], w, k[1])
            for i in range(k[0]):
                for j in range(k[1]):
                    tiles[:, :, :, i, :, j] = scaled
        else:
            tiles = out[..., : y.shape[2] * k[0]].view(b, c, y.shape[2], k[0])
            for j in range(k[0]):
                tiles[..., j] = scaled
        return out

    def extra_repr(self) -> str:
        kernel_size, stride, padding = self._args
        return f"{self.pre!r} -> {self.post!r}, kernel_size={kernel_size}, stride={stride}, padding={padding}"
