"""Two-dimensional toy data sets: Gaussian mixtures and the swiss roll.

The mixtures and their scalings follow the toy experiments of Gulrajani et al.
(2017, "Improved Training of Wasserstein GANs").
"""

from __future__ import annotations

import math
from functools import partial

import torch
from sklearn.datasets import make_swiss_roll
from torch import Tensor

from .base import TEST_SEED, TEST_SIZE, Dataset

__all__ = ["eight_gaussians", "swissroll", "twenty_five_gaussians"]

SWISSROLL_NOISE = 0.25
SWISSROLL_SCALE = 7.5


def _mixture_sample(modes: Tensor, std: float, n: int, generator: torch.Generator) -> Tensor:
    index = torch.randint(len(modes), (n,), generator=generator)
    noise = torch.randn(n, modes.shape[1], generator=generator)
    return modes[index] + std * noise


def _mixture(name: str, modes: Tensor, std: float) -> Dataset:
    sampler = partial(_mixture_sample, modes, std)
    test = sampler(TEST_SIZE, torch.Generator().manual_seed(TEST_SEED))
    return Dataset(name=name, sample_shape=(2,), test=test, sampler=sampler, modes=modes, mode_std=std)


def eight_gaussians() -> Dataset:
    """Return 8 Gaussians at angles k * pi / 4 on a circle of radius sqrt(2), std 0.02 / sqrt(2).

    These are the radius-2, std-0.02 mixture divided by sqrt(2).
    """
    angles = torch.arange(8, dtype=torch.float64) * math.pi / 4
    modes = 2.0 * torch.stack([torch.cos(angles), torch.sin(angles)], dim=1) / math.sqrt(2)
    return _mixture("8gaussians", modes.float(), 0.02 / math.sqrt(2))


def twenty_five_gaussians() -> Dataset:
    """Return 25 Gaussians on the grid {-2, ..., 2}^2 with std 0.05, all divided by 2 sqrt(2)."""
    grid = torch.arange(-2, 3, dtype=torch.float64)
    modes = torch.cartesian_prod(grid, grid) / (2 * math.sqrt(2))
    return _mixture("25gaussians", modes.float(), 0.05 / (2 * math.sqrt(2)))


def _swissroll_sample(n: int, generator: torch.Generator) -> Tensor:
    # scikit-learn draws from numpy, so the torch generator supplies its seed.
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
    points, _ = make_swiss_roll(n_samples=n, noise=SWISSROLL_NOISE, random_state=seed)
    return torch.from_numpy(points[:, [0, 2]] / SWISSROLL_SCALE).float()


def swissroll() -> Dataset:
    """Return scikit-learn's swiss roll (noise 0.25), coordinates 0 and 2, divided by 7.5."""
    test = _swissroll_sample(TEST_SIZE, torch.Generator().manual_seed(TEST_SEED))
    return Dataset(name="swissroll", sample_shape=(2,), test=test, sampler=_swissroll_sample)
