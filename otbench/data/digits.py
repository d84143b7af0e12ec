"""The 8x8 handwritten digits shipped with scikit-learn, scaled to [-1, 1]."""

from __future__ import annotations

from functools import partial

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import Tensor

from .base import Dataset

__all__ = ["digits"]

TEST_FRACTION = 0.2
SPLIT_SEED = 0


def _draw(train: Tensor, n: int, generator: torch.Generator) -> Tensor:
    index = torch.randint(len(train), (n,), generator=generator)
    return train[index]


def digits() -> Dataset:
    """Return the 1,797 digits of ``sklearn.datasets.load_digits`` as (1, 8, 8) images.

    Pixel values v in 0..16 become v / 8 - 1, in [-1, 1]. A stratified split
    (``train_test_split`` with test_size=0.2, random_state=0) keeps 360 images
    as the held-out set. :meth:`Dataset.sample` draws from the 1,437 training
    images with replacement.
    """
    images, labels = load_digits(return_X_y=True)
    images = (images.astype(np.float32) / 8.0 - 1.0).reshape(-1, 1, 8, 8)
    train_x, test_x, train_y, test_y = train_test_split(
        images, labels, test_size=TEST_FRACTION, random_state=SPLIT_SEED, stratify=labels
    )
    train = torch.from_numpy(np.ascontiguousarray(train_x))
    return Dataset(
        name="digits",
        sample_shape=(1, 8, 8),
        test=torch.from_numpy(np.ascontiguousarray(test_x)),
        sampler=partial(_draw, train),
        train=train,
        train_labels=torch.from_numpy(train_y.astype(np.int64)),
        test_labels=torch.from_numpy(test_y.astype(np.int64)),
    )
