"""MNIST-like data as the classifier's inputs: pixels in ``[-1, 1]`` (KH16's scaling) and the train/test split."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from torch import Tensor

from assocmem.checks import is_count, require_tensor
from assocmem.data import load


@dataclass
class Data:
    """Training and test images (float, ``(N, P)`` in ``[-1, 1]``) and labels ``(N,)``."""

    train_images: Tensor
    train_labels: Tensor
    test_images: Tensor
    test_labels: Tensor


def to_pixels(images: Tensor) -> Tensor:
    """uint8 images ``(N, *shape)`` -> float32 ``(N, pixels)`` in ``[-1, 1]`` (``2 x / 255 - 1``, as KH16)."""
    images = require_tensor(images, "images", "to_pixels", floating=False)
    if images.dtype != torch.uint8:
        raise TypeError(f"to_pixels: images must be uint8 (0..255), got {images.dtype}")
    if images.dim() < 2:
        raise ValueError(f"to_pixels: images must have shape (N, *shape), got {tuple(images.shape)}")
    return images.flatten(1).float().mul_(2.0 / 255.0).sub_(1.0)


def load_data(
    dataset: str,
    *,
    data_dir: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    download: bool = True,
    train_size: int | None = None,
) -> Data:
    """``dataset`` ("mnist" or "fashion-mnist", found as :func:`assocmem.data.load` finds it) as classifier pixels;
    ``train_size`` keeps the first that many training images (all when None; 0 when only the
    test images are wanted).

    Example: ``data = load_data("mnist", data_dir="~/data/mnist")``.
    """
    if train_size is not None and not (train_size == 0 or is_count(train_size)):
        raise ValueError(f"load_data: train_size must be a non-negative int or None, got {train_size!r}")
    ds = load(dataset, data_dir=data_dir, cache_dir=cache_dir, download=download)
    train_images, train_labels = ds.train.images, ds.train.labels
    if train_size is not None:
        train_images, train_labels = train_images[:train_size], train_labels[:train_size]
    return Data(to_pixels(train_images), train_labels, to_pixels(ds.test.images), ds.test.labels)
