"""Pairs of distributions whose true Wasserstein distance is known.

>>> from otbench import problems
>>> problem = problems.get("translation", d=3, shift=2.0)
>>> x, y = problem.sample(100, seed=0)
>>> problem.true_distance(2)
2.0
"""

from __future__ import annotations

import inspect
from typing import Any

from .base import Problem
from .brenier import Brenier
from .funnels import Funnels
from .gaussians import Gaussians
from .one_d import OneD
from .translation import Translation

__all__ = [
    "Brenier",
    "Funnels",
    "Gaussians",
    "OneD",
    "Problem",
    "Translation",
    "available",
    "get",
    "problem_class",
]

_REGISTRY: dict[str, type[Problem]] = {cls.name: cls for cls in (Translation, Gaussians, OneD, Funnels, Brenier)}


def available() -> list[str]:
    """Return the registered problem names, sorted."""
    return sorted(_REGISTRY)


def problem_class(name: str) -> type[Problem]:
    """Return the class registered under ``name``.

    Raises:
        ValueError: unknown name; the message lists the available ones.
    """
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown problem {name!r}; available: {', '.join(available())}") from None


def get(name: str, **params: Any) -> Problem:
    """Build problem ``name`` with keyword ``params``.

    Raises:
        ValueError: unknown name, unknown parameter, or an invalid value.
    """
    cls = problem_class(name)
    allowed = [key for key in inspect.signature(cls.__init__).parameters if key != "self"]
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise ValueError(f"problem {name!r} got unknown parameter(s) {unknown}; allowed: {allowed}")
    return cls(**params)
