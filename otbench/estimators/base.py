"""The estimator contract shared by every Wasserstein estimator.

An estimator is a ``torch.nn.Module``. ``est(x, y, a=None, b=None)`` returns a
0-dim tensor estimating W_p(x, y) in the units of the samples (not W_p^p),
for the ground cost ||x - y||_2^p. What the inner loop did during the last
call is stored in ``est.last_solve``.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from ..validation import check_order, check_pair

__all__ = [
    "Capabilities",
    "ConvergenceWarning",
    "Estimator",
    "MemoryBudgetError",
    "SolveResult",
    "check_memory",
    "default_memory_budget",
]


@dataclass(frozen=True)
class Capabilities:
    """Features an estimator supports, declared so that harness and CLI build only valid runs.

    Attributes:
        orders: orders p of the ground cost ||x - y||^p it estimates W_p for.
        weights: accepts non-uniform weights ``a`` and ``b``.
        inner_loop: trains or iterates something before returning (a critic, Sinkhorn).
        exact: returns the exact W_p of the two empirical measures.
        scale_known: the value is W_p itself, or an approximation of it. False when the value
            is W_p only up to an unknown factor (a weight-clipped critic).
        images: keeps (n, C, H, W) inputs whole instead of flattening them.
    """

    orders: tuple[int, ...]
    weights: bool
    inner_loop: bool
    exact: bool
    scale_known: bool = True
    images: bool = False


@dataclass(frozen=True)
class SolveResult:
    """Outcome of one estimator call's inner loop.

    Attributes:
        value: the returned estimate, as a float.
        iterations: Sinkhorn iterations or critic steps; None where the solver does not
            report them (POT's network simplex).
        converged: False when the solver stopped before its stopping criterion held;
            None for estimators without a stopping criterion (critics).
        seconds: wall-clock seconds of the inner loop (solver or critic training).
        marginal_error: L1 error of the transport plan's marginals, where the solver has one.
    """

    value: float
    iterations: int | None
    converged: bool | None
    seconds: float
    marginal_error: float | None = None


class ConvergenceWarning(UserWarning):
    """Warned when an inner loop stops before its stopping criterion holds."""


def warn_caller(message: str, category: type[Warning] = ConvergenceWarning) -> None:
    """Warn at the first stack frame outside otbench and torch, so the warning names user code."""
    import sys
    import types

    package_dir = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    torch_dir = os.path.dirname(os.path.abspath(torch.__file__))
    level = 2  # stacklevel 1 is this function, 2 its caller
    frame: types.FrameType | None = sys._getframe(1)
    while frame is not None and frame.f_code.co_filename.startswith((package_dir, torch_dir)):
        frame = frame.f_back
        level += 1
    warnings.warn(message, category, stacklevel=level)


class MemoryBudgetError(MemoryError):
    """Raised before allocating dense matrices that would exceed the memory budget."""

    def __init__(self, estimator: str, n: int, m: int, needed: int, budget: int) -> None:
        self.n, self.m, self.needed, self.budget = n, m, needed, budget
        super().__init__(
            f"estimator {estimator!r} needs {needed / 1e9:.3g} GB for its dense "
            f"matrices at n={n}, m={m}, over the memory budget of {budget / 1e9:.3g} GB. "
            f"Use fewer samples, raise memory_budget (bytes) or OTBENCH_MEMORY_BUDGET, "
            f"or use an estimator whose memory grows linearly in n: 'sliced' or a critic "
            f"other than 'critic-ctransform'"
        )


def default_memory_budget() -> int:
    """Return the byte budget for dense matrices: ``OTBENCH_MEMORY_BUDGET`` or 4 GB."""
    raw = os.environ.get("OTBENCH_MEMORY_BUDGET")
    if raw is None:
        return 4 * 10**9
    try:
        value = int(float(raw))
    except ValueError:
        raise ValueError(
            f"OTBENCH_MEMORY_BUDGET={raw!r} is invalid; expected a number of bytes"
        ) from None
    if value <= 0:
        raise ValueError(f"OTBENCH_MEMORY_BUDGET={raw!r} is invalid; expected a positive number of bytes")
    return value


def check_memory(estimator: str, n: int, m: int, n_matrices: float, itemsize: int, budget: int) -> None:
    """Raise ``MemoryBudgetError`` if ``n_matrices`` dense n x m matrices exceed ``budget``."""
    needed = int(n_matrices * n * m * itemsize)
    if needed > budget:
        raise MemoryBudgetError(estimator, n, m, needed, budget)


class Estimator(nn.Module):
    """Base class: validates input, then calls ``_estimate`` on clean tensors.

    Subclasses set ``name`` and ``capabilities`` and implement
    ``_estimate(x, y, a, b) -> (value, SolveResult)``.
    """

    name: ClassVar[str]
    capabilities: ClassVar[Capabilities]

    def __init__(self, p: int = 1) -> None:
        super().__init__()
        self.p = check_order(p, self.capabilities.orders, self.name)
        self.last_solve: SolveResult | None = None

    def forward(self, x: Tensor, y: Tensor, a: Tensor | None = None, b: Tensor | None = None) -> Tensor:
        """Estimate W_p between the empirical measures of ``x`` and ``y``.

        Args:
            x: model samples, shape (n, d) or (n, C, H, W).
            y: data samples, same feature shape as ``x``.
            a: optional probability weights of ``x``, shape (n,).
            b: optional probability weights of ``y``, shape (m,).

        Returns:
            A 0-dim tensor with the dtype and device of ``x``.

        Raises:
            ValueError: invalid samples or weights, or weights given to an
                estimator that does not support them.
        """
        if (a is not None or b is not None) and not self.capabilities.weights:
            raise ValueError(
                f"estimator {self.name!r} does not support weights a, b; "
                f"pass uniform samples instead (for example, resample by weight)"
            )
        x, y, a, b = check_pair(x, y, a, b, keep_image=self.capabilities.images)
        value, result = self._estimate(x, y, a, b)
        self.last_solve = result
        return value

    def _estimate(
        self, x: Tensor, y: Tensor, a: Tensor | None, b: Tensor | None
    ) -> tuple[Tensor, SolveResult]:
        raise NotImplementedError

    def config(self) -> dict[str, Any]:
        """Return the constructor parameters, for records and reports."""
        return {"p": self.p}

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.config().items())


def uniform_weights(n: int, like: Tensor) -> Tensor:
    """Return uniform probability weights (n,) with the dtype and device of ``like``."""
    return torch.full((n,), 1.0 / n, dtype=like.dtype, device=like.device)


def root(value: Tensor, p: int) -> Tensor:
    """Return ``value ** (1 / p)`` for ``value >= 0``, with a zero gradient at 0.

    A plain ``sqrt`` has an infinite derivative at 0, which turns the gradient
    of W_2 between identical samples into NaN. Slightly negative values, from
    round-off in a divergence that is 0 in exact arithmetic, map to 0.
    """
    if p == 1:
        return value.clamp_min(0.0)
    tiny = torch.finfo(value.dtype).tiny
    positive = value > 0
    return torch.where(positive, value.clamp_min(tiny).pow(1.0 / p), torch.zeros_like(value))


def pairwise_cost(x: Tensor, y: Tensor, p: int) -> Tensor:
    """Return the (n, m) cost matrix ||x_i - y_j||^p with finite gradients.

    Small problems compute squared distances from differences, so that equal
    points give exactly 0. Larger ones use ||x||^2 - 2<x, y> + ||y||^2 clamped
    at 0, which avoids an (n, m, d) temporary. For p = 1 the gradient of the
    norm at 0 is taken as 0 instead of NaN.
    """
    if x.shape[0] * y.shape[0] * x.shape[1] <= _DIFFERENCE_LIMIT:
        sq = (x[:, None, :] - y[None, :, :]).pow(2).sum(-1)
    else:
        sq = (x.pow(2).sum(1)[:, None] + y.pow(2).sum(1)[None, :] - 2.0 * x @ y.T).clamp_min(0.0)
    if p == 2:
        return sq
    tiny = torch.finfo(sq.dtype).tiny
    return torch.where(sq > 0, sq.clamp_min(tiny).sqrt(), torch.zeros_like(sq))


# Largest n * m * d for which pairwise_cost builds the (n, m, d) differences. Above
# about 2^14 (n = m = 90 at d = 2), forward plus backward of the matrix product is faster.
_DIFFERENCE_LIMIT = 2**14
