"""otbench: interchangeable Wasserstein estimators for training generative models.

Every estimator returns an estimate of W_p itself, in the units of the samples,
for the ground cost ||x - y||_2^p.
"""

from __future__ import annotations

import logging

from .estimators import (
    Capabilities,
    Estimator,
    MemoryBudgetError,
    SolveResult,
    available_estimators,
    capabilities,
    estimator,
)

__version__ = "0.1.0"

__all__ = [
    "Capabilities",
    "Estimator",
    "MemoryBudgetError",
    "SolveResult",
    "__version__",
    "available_estimators",
    "capabilities",
    "estimator",
]

logging.getLogger(__name__).addHandler(logging.NullHandler())
