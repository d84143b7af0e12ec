"""The training data set contract."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor

__all__ = ["Dataset"]

# Seed of the generator that draws the fixed held-out set of each synthetic data set.
TEST_SEED = 1234
TEST_SIZE = 2000


@dataclass(frozen=True, eq=False)
class Dataset:
    """A training distribution, a fixed held-out set and, for mixtures, its modes.

    The tensors are shared with every caller of the same object: treat them as
    read-only.

    Attributes:
        name: the registry name, as passed to ``otbench.data.load``.
        sample_shape: shape of one sample, ``(2,)`` or ``(1, 8, 8)``.
        test: held-out samples, (N_test, *sample_shape), float32.
        modes: mode centres of a Gaussian mixture, (k, 2), float32, else None.
        mode_std: standard deviation of each mixture component, else None.
        train: the finite training split, (N_train, *sample_shape), for data
            sets that have one (digits), else None.
        train_labels: class labels of ``train`` (int64), else None.
        test_labels: class labels of ``test`` (int64), else None.
    """

    name: str
    sample_shape: tuple[int, ...]
    test: Tensor = field(repr=False)
    sampler: Callable[[int, torch.Generator], Tensor] = field(repr=False)
    modes: Tensor | None = field(default=None, repr=False)
    mode_std: float | None = None
    train: Tensor | None = field(default=None, repr=False)
    train_labels: Tensor | None = field(default=None, repr=False)
    test_labels: Tensor | None = field(default=None, repr=False)

    @property
    def dim(self) -> int:
        """Number of features of one flattened sample."""
        return math.prod(self.sample_shape)

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        """Draw a training batch.

        Args:
            n: batch size.
            generator: a CPU ``torch.Generator``; the batch depends only on its state.

        Returns:
            A float32 tensor of shape (n, *sample_shape).

        Raises:
            ValueError: ``n`` is not a positive integer or ``generator`` is not
                a ``torch.Generator``.
        """
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"n={n!r} is invalid; expected a positive integer batch size")
        if not isinstance(generator, torch.Generator):
            raise ValueError(
                f"generator={generator!r} is invalid; expected a torch.Generator, "
                f"for example torch.Generator().manual_seed(0)"
            )
        batch = self.sampler(n, generator)
        assert batch.shape == (n, *self.sample_shape)
        assert batch.dtype == torch.float32
        return batch
