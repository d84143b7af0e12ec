"""Training data sets, built locally with no downloads.

>>> import torch
>>> from otbench import data
>>> dataset = data.load("8gaussians")
>>> dataset.sample(4, torch.Generator().manual_seed(0)).shape
torch.Size([4, 2])
"""

from __future__ import annotations

from collections.abc import Callable

from .base import Dataset
from .digits import digits
from .toys import eight_gaussians, swissroll, twenty_five_gaussians

__all__ = ["Dataset", "available", "load"]

_BUILDERS: dict[str, Callable[[], Dataset]] = {
    "8gaussians": eight_gaussians,
    "25gaussians": twenty_five_gaussians,
    "swissroll": swissroll,
    "digits": digits,
}


def available() -> list[str]:
    """Return the names of the data sets, sorted."""
    return sorted(_BUILDERS)


def load(name: str) -> Dataset:
    """Build data set ``name``: its sampler, fixed held-out set and modes.

    Each call builds a new object, which takes well under a second.

    Raises:
        ValueError: unknown name; the message lists the available ones.
    """
    try:
        builder = _BUILDERS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown data set {name!r}; available: {', '.join(available())}") from None
    return builder()
