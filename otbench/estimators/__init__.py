"""Wasserstein estimators behind one contract, and their registry.

>>> import torch, otbench
>>> est = otbench.estimator("sinkhorn", p=2, blur=0.01)
>>> x = torch.zeros(1, 2); y = torch.tensor([[3.0, 4.0]])
>>> round(float(est(x, y)), 3)
5.0
"""

from __future__ import annotations

from typing import Any

from .base import Capabilities, Estimator, MemoryBudgetError, SolveResult
from .critics import ClipCritic, GPCritic, LPCritic, SNCritic
from .ctransform import CTransformCritic
from .entropic import EntropicOT
from .exact import ExactLP
from .sinkhorn import SinkhornDivergence
from .sliced import MaxSlicedWasserstein, SlicedWasserstein

__all__ = [
    "Capabilities",
    "Estimator",
    "MemoryBudgetError",
    "SolveResult",
    "available_estimators",
    "capabilities",
    "estimator",
    "estimator_class",
]

_REGISTRY: dict[str, type[Estimator]] = {
    cls.name: cls
    for cls in (
        ExactLP,
        SinkhornDivergence,
        ClipCritic,
        GPCritic,
        LPCritic,
        SNCritic,
        CTransformCritic,
        SlicedWasserstein,
        MaxSlicedWasserstein,
        EntropicOT,
    )
}


def available_estimators() -> list[str]:
    """Return the registered estimator names, sorted."""
    return sorted(_REGISTRY)


def estimator_class(name: str) -> type[Estimator]:
    """Return the class registered under ``name``.

    Raises:
        ValueError: unknown name; the message lists the available ones.
    """
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown estimator {name!r}; available: {', '.join(available_estimators())}"
        ) from None


def capabilities(name: str) -> Capabilities:
    """Return what estimator ``name`` supports, without building it."""
    return estimator_class(name).capabilities


def estimator(name: str, **params: Any) -> Estimator:
    """Build estimator ``name`` with keyword ``params``.

    Raises:
        ValueError: unknown name, unknown parameter, or an invalid value.
    """
    cls = estimator_class(name)
    try:
        return cls(**params)
    except TypeError as error:
        if "unexpected keyword argument" not in str(error):
            raise
        import inspect

        allowed = [k for k in inspect.signature(cls.__init__).parameters if k != "self"]
        unknown = sorted(set(params) - set(allowed))
        raise ValueError(
            f"estimator {name!r} got unknown parameter(s) {unknown}; allowed: {allowed}"
        ) from None
