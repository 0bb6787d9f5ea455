"""Convolutional (locally connected, weight-shared) synapses (Krotov 2021; docs/reference.md §4).

Energy ``E = -g_post . conv(W, g_pre)``: the bottom-up drive into ``post`` is the convolution of ``g_pre`` with
``W``; the top-down drive into ``pre`` is its adjoint, the transposed convolution of ``g_post``. 1-, 2- and 3-d
convolutions are supported (layer shapes ``(C, L)``, ``(C, H, W)``, ``(C, D, H, W)``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from torch import Tensor
from torch.nn import functional as TF

from assocmem.network.synapse import Synapse, register_weight

_CONV = {1: TF.conv1d, 2: TF.conv2d, 3: TF.conv3d}
_CONV_T = {1: TF.conv_transpose1d, 2: TF.conv_transpose2d, 3: TF.conv_transpose3d}


def spatial_tuple(
    value: int | Sequence[int], nd: int, arg: str, minimum: int, who: str = "ConvSynapse"
) -> tuple[int, ...]:
    """One int per spatial dimension (an int is repeated ``nd`` times); each at least ``minimum``."""
    try:
        vals = (value,) * nd if isinstance(value, int) and not isinstance(value, bool) else tuple(value)
    except TypeError:
        vals = ()
    if len(vals) != nd or not all(
        isinstance(v, int) and not isinstance(v, bool) and v >= minimum for v in vals
    ):
        raise ValueError(f"{who}: {arg} must be an int >= {minimum} or {nd} of them, got {value!r}")
    return vals


class ConvSynapse(Synapse):
    """Convolutional synapse: energy ``-g_post . conv(W, g_pre)``.

    ``weight`` has shape ``(C_post, C_pre / groups, *kernel)`` as for ``torch.nn.functional.conv2d``. The layer
    shapes are checked when the synapse joins a :class:`~assocmem.Network`: ``post`` must have exactly the shape
    the convolution produces from ``pre``.

    Example: ``ConvSynapse("image", "edges", torch.randn(8, 1, 5, 5), stride=2, padding=2)`` joins an image layer
    ``(1, 28, 28)`` to a feature layer ``(8, 14, 14)``.
    """

    def __init__(
        self,
        pre: str,
        post: str,
        weight: Tensor,
        stride: int | Sequence[int] = 1,
        padding: int | Sequence[int] = 0,
        dilation: int | Sequence[int] = 1,
        groups: int = 1,
        name: str | None = None,
    ) -> None:
        super().__init__(pre, post, name)
        if self.recurrent:
            raise ValueError(
                f"ConvSynapse {self.name!r}: pre and post must be different layers, got {pre!r} twice"
            )
        register_weight(self, weight, "ConvSynapse", (3, 4, 5))
        nd = self.weight.dim() - 2
        self.nd = nd
        self.stride = spatial_tuple(stride, nd, "stride", 1)
        self.padding = spatial_tuple(padding, nd, "padding", 0)
        self.dilation = spatial_tuple(dilation, nd, "dilation", 1)
        if (
            isinstance(groups, bool)
            or not isinstance(groups, int)
            or groups < 1
            or self.weight.shape[0] % groups
        ):
            raise ValueError(
                f"ConvSynapse: groups must be a positive int dividing the {self.weight.shape[0]} output channels, "
                f"got {groups!r}"
            )
        self.groups = groups
        self.output_padding: tuple[int, ...] = (0,) * nd

    def output_shape(self, pre_shape: Sequence[int]) -> tuple[int, ...]:
        """The ``post`` layer shape the convolution produces from a ``pre`` layer of shape ``pre_shape``."""
        c_in = self.weight.shape[1] * self.groups
        if len(pre_shape) != self.nd + 1 or pre_shape[0] != c_in:
            raise ValueError(
                f"ConvSynapse {self.name!r}: layer {self.pre!r} must have shape ({c_in}, <{self.nd} spatial sizes>) "
                f"for a weight of shape {tuple(self.weight.shape)} with groups={self.groups}; it has shape "
                f"{tuple(pre_shape)}"
            )
        out = []
        for size, k, s, p, d in zip(
            pre_shape[1:], self.weight.shape[2:], self.stride, self.padding, self.dilation, strict=True
        ):
            n = (size + 2 * p - d * (k - 1) - 1) // s + 1
            if n < 1:
                raise ValueError(
                    f"ConvSynapse {self.name!r}: kernel {tuple(self.weight.shape[2:])} does not fit layer "
                    f"{self.pre!r} of shape {tuple(pre_shape)} with padding {self.padding}"
                )
            out.append(n)
        return (self.weight.shape[0], *out)

    def bind(self, shapes: Mapping[str, tuple[int, ...]]) -> None:
        pre_shape, post_shape = tuple(shapes[self.pre]), tuple(shapes[self.post])
        expected = self.output_shape(pre_shape)
        if post_shape != expected:
            raise ValueError(
                f"ConvSynapse {self.name!r}: layer {self.post!r} has shape {post_shape} but the convolution of layer "
                f"{self.pre!r} {pre_shape} produces {expected}"
            )
        super().bind(shapes)
        # The transposed convolution must restore the pre layer's exact size (stride may drop a remainder).
        self.output_padding = tuple(
            size - ((n - 1) * s - 2 * p + d * (k - 1) + 1)
            for size, n, k, s, p, d in zip(
                pre_shape[1:],
                expected[1:],
                self.weight.shape[2:],
                self.stride,
                self.padding,
                self.dilation,
                strict=True,
            )
        )

    def drive(self, target: str, source: Tensor) -> Tensor:
        if target == self.post:
            return _CONV[self.nd](
                source, self.weight, None, self.stride, self.padding, self.dilation, self.groups
            )
        if target == self.pre:
            return _CONV_T[self.nd](
                source,
                self.weight,
                None,
                self.stride,
                self.padding,
                self.output_padding,
                self.groups,
                self.dilation,
            )
        raise KeyError(f"ConvSynapse {self.name!r} does not touch layer {target!r}")

    def extra_repr(self) -> str:
        return (
            f"{self.pre!r} -> {self.post!r}, weight={tuple(self.weight.shape)}, stride={self.stride}, "
            f"padding={self.padding}, dilation={self.dilation}, groups={self.groups}"
        )
