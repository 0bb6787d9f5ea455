"""The recipes' data: MNIST-like images as floats in ``[0, 1]``, shape ``(N, 1, 28, 28)``, with their labels."""

from __future__ import annotations

import os
from dataclasses import dataclass

from torch import Tensor

from assocmem.data import load


@dataclass
class ImageData:
    train_images: Tensor
    train_labels: Tensor
    test_images: Tensor
    test_labels: Tensor


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
