"""The recipes' data: MNIST-like images as floats in ``[0, 1]``, shape ``(N, 1, 28, 28)``, with their labels."""

from __future__ import annotations

import os
from dataclasses import dataclass

from torch import Tensor

from assocmem.checks import require_tensor, value_checks_enabled, where_not_finite
from assocmem.data import load


@dataclass
class ImageData:
    train_images: Tensor
    train_labels: Tensor
    test_images: Tensor
    test_labels: Tensor


def check_images(images: Tensor, labels: Tensor, who: str, part: str = "test") -> None:
    """Refuse images no recipe can use, naming ``who`` and the ``part`` (train or test): images ``(N, 1, 28, 28)``
    (or ``(N, 784)``) floating point, finite and non-empty, labels ``(N,)`` integers, nothing on the meta device."""
    images = require_tensor(images, f"{part} images", who)
    labels = require_tensor(labels, f"{part} labels", who, floating=False)
    if tuple(images.shape[1:]) not in ((1, 28, 28), (784,)):
        raise ValueError(
            f"{who}: {part} images must have shape (N, 1, 28, 28) or (N, 784), got {tuple(images.shape)}"
        )
    if images.shape[0] == 0:
        raise ValueError(f"{who}: {part} images are empty (no image)")
    if labels.dtype.is_floating_point or labels.dim() != 1 or labels.shape[0] != images.shape[0]:
        raise ValueError(
            f"{who}: {part} labels must be integers of shape ({images.shape[0]},), got {labels.dtype} "
            f"{tuple(labels.shape)}"
        )
    if value_checks_enabled() and (bad := where_not_finite(images)):
        raise ValueError(f"{who}: {part} images must be finite, found {bad}")


def load_images(
    dataset: str,
    *,
    data_dir: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    download: bool = True,
    train_size: int | None = None,
    test_size: int | None = None,
) -> ImageData:
    """``dataset`` as :func:`assocmem.data.load` finds it, pixels ``/ 255``; the first ``train_size`` /
    ``test_size`` images when given."""
    ds = load(dataset, data_dir=data_dir, cache_dir=cache_dir, download=download)

    def pixels(images: Tensor, n: int | None) -> Tensor:
        return images[:n].unsqueeze(1).float().div_(255.0)

    return ImageData(
        pixels(ds.train.images, train_size),
        ds.train.labels[:train_size],
        pixels(ds.test.images, test_size),
        ds.test.labels[:test_size],
    )
