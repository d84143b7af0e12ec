"""Sliced and max-sliced Wasserstein distances, computed by POT.

Each direction theta on the unit sphere S^(d-1) projects both samples onto a
line, where W_p has a closed form by sorting. For k directions theta_1..theta_k,

    SW_p = (1/k sum_l W_p^p(theta_l # a, theta_l # b))^(1/p)
    max-SW_p = (max_l W_p^p(theta_l # a, theta_l # b))^(1/p),

where theta # a is the measure of the projected samples <theta, x_i> with
weights a. A projection is 1-Lipschitz, so W_p between two projections is at
most W_p between the measures, and SW_p <= max-SW_p <= W_p. Both are distances
of their own and lower bounds of W_p, not estimates of it: for a translation
by t with directions uniform on the sphere, SW_2 tends to ||t|| / sqrt(d) as
k grows, while W_2 = ||t||.

References: Bonneel et al. 2015, "Sliced and Radon
Wasserstein barycenters of measures"; Deshpande et al. 2019, "Max-Sliced
Wasserstein Distance and its use for GANs".
"""

from __future__ import annotations

import logging
import time
from typing import Any

import ot
import torch
from torch import Tensor

from ..validation import check_positive
from .base import Capabilities, Estimator, SolveResult, check_memory, default_memory_budget, root

__all__ = ["MaxSlicedWasserstein", "SlicedWasserstein", "random_directions"]

logger = logging.getLogger(__name__)

# Peak memory of POT's sliced solve with its backward pass, in arrays of
# (n + m) x projections float64 entries: projections, sorted copies, weights,
# cumulative weights, quantile indices and their gradients. Measured with
# ru_maxrss for POT 0.9.7, torch 2.13 on the CPU, n = m = 20000 and 50000, d = 5.
_ARRAYS_PER_PROJECTION = 16


def random_directions(d: int, projections: int, seed: int, like: Tensor) -> Tensor:
    """Draw ``projections`` directions uniform on the unit sphere of R^d.

    The directions come from a CPU ``torch.Generator`` seeded by ``seed``, so
    they depend only on (d, projections, seed, dtype), not on the device or on
    the global random state. They are moved to the device of ``like``.

    Returns:
        A (d, projections) tensor with unit-norm columns, in the dtype and
        on the device of ``like``.
    """
    generator = torch.Generator().manual_seed(seed)
    directions = torch.randn(d, projections, generator=generator, dtype=like.dtype)
    directions = directions / directions.norm(dim=0, keepdim=True)
    return directions.to(like.device)


class _SlicedEstimator(Estimator):
    """Shared parameters, checks and POT call of the sliced estimators."""

    capabilities = Capabilities(orders=(1, 2), weights=True, inner_loop=False, exact=False)

    def __init__(self, p: int = 2, projections: int = 128, seed: int = 0, memory_budget: int | None = None) -> None:
        super().__init__(p)
        check_positive("projections", projections, integer=True)
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed={seed!r} is invalid; expected a non-negative integer")
        if memory_budget is not None:
            check_positive("memory_budget", memory_budget, integer=True)
        self.projections = projections
        self.seed = seed
        self.memory_budget = memory_budget

    def config(self) -> dict[str, Any]:
        return {
            "p": self.p,
            "projections": self.projections,
            "seed": self.seed,
            "memory_budget": self.memory_budget,
        }

    def _solve(self, x: Tensor, y: Tensor, a: Tensor | None, b: Tensor | None, directions: Tensor) -> Tensor:
        """Return the estimator's W_p^p from POT's W_p^p of each projection."""
        raise NotImplementedError

    def _estimate(self, x: Tensor, y: Tensor, a: Tensor | None, b: Tensor | None) -> tuple[Tensor, SolveResult]:
        n, m = x.shape[0], y.shape[0]
        budget = self.memory_budget or default_memory_budget()
        check_memory(self.name, n, m, _ARRAYS_PER_PROJECTION * (n + m) * self.projections / (n * m), 8, budget)

        start = time.perf_counter()
        directions = random_directions(x.shape[1], self.projections, self.seed, x)
        value = root(self._solve(x, y, a, b, directions), self.p)
        seconds = time.perf_counter() - start

        result = SolveResult(value=float(value.detach()), iterations=None, converged=True, seconds=seconds)
        return value, result


class SlicedWasserstein(_SlicedEstimator):
    """Sliced Wasserstein distance SW_p, the mean of W_p^p over random directions, to the power 1/p.

    Args:
        p: order of the ground cost |s - t|^p on each line, 1 or 2.
        projections: number k of random directions.
        seed: seed of the directions. The same seed gives the same directions,
            so the same input gives the same value on every call.
        memory_budget: bytes allowed for the (n + m) x k arrays of the solve
            (about 16 of them with 8-byte entries, backward pass included).
            ``None`` reads ``OTBENCH_MEMORY_BUDGET`` or uses 4 GB.

    The value is a distance of its own, in the units of the samples, and a
    lower bound of W_p: SW_p <= max-SW_p <= W_p. It costs
    O(k (n + m) log(n + m)) time and O(k (n + m)) memory, so it scales to
    large n. Gradients flow to x, y and the weights through POT's sort-based
    1-D solver (``ot.wasserstein_1d``).

    NOTE: a fixed seed gives a loss that uses only the same k directions at
    every call. When k is small against d, a generator trained on it can match
    those projections and differ elsewhere. Change ``seed`` between steps to
    draw fresh directions.

    Example:
        >>> est = SlicedWasserstein(p=2, projections=256)
        >>> x = torch.zeros(1, 2); y = torch.tensor([[3.0, 4.0]])
        >>> value = est(x, y)  # close to 5 / sqrt(2)
    """

    name = "sliced"

    def _solve(self, x: Tensor, y: Tensor, a: Tensor | None, b: Tensor | None, directions: Tensor) -> Tensor:
        # With log=True POT also returns W_p^p of each projection. The root is
        # taken by the caller, because POT's plain power 1/p has an infinite
        # derivative at 0 and gives NaN gradients between identical samples.
        _, log = ot.sliced_wasserstein_distance(x, y, a, b, p=self.p, projections=directions, log=True)
        projected: Tensor = log["projected_emds"]
        return projected.mean()


class MaxSlicedWasserstein(_SlicedEstimator):
    """Max-sliced Wasserstein distance, the largest W_p among random directions.

    Args:
        p: order of the ground cost |s - t|^p on each line, 1 or 2.
        projections: number k of random directions.
        seed: seed of the directions. The same seed gives the same directions,
            so the same input gives the same value on every call.
        memory_budget: bytes allowed for the (n + m) x k arrays of the solve
            (about 16 of them with 8-byte entries, backward pass included).
            ``None`` reads ``OTBENCH_MEMORY_BUDGET`` or uses 4 GB.

    The maximum is over the k random directions (as POT's
    ``max_sliced_wasserstein_distance`` computes it), not over the whole
    sphere. Deshpande et al. optimise the direction, which gives a larger value.
    The value is a lower bound of W_p and at least the sliced value with the
    same seed and ``projections``. Gradients reach x and y only through the
    maximising direction.

    Example:
        >>> est = MaxSlicedWasserstein(p=2, projections=256)
        >>> x = torch.zeros(1, 2); y = torch.tensor([[3.0, 4.0]])
        >>> value = est(x, y)  # a little below 5
    """

    name = "max-sliced"

    def _solve(self, x: Tensor, y: Tensor, a: Tensor | None, b: Tensor | None, directions: Tensor) -> Tensor:
        # The root is taken by the caller, as for the sliced estimator.
        _, log = ot.max_sliced_wasserstein_distance(x, y, a, b, p=self.p, projections=directions, log=True)
        projected: Tensor = log["projected_emds"]
        return projected.max()
