"""Pairs of distributions on the real line: W_p from the quantile functions."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
import torch
from scipy import integrate, optimize, stats
from torch import Tensor

from .base import Problem

__all__ = ["PAIRS", "OneD"]

logger = logging.getLogger(__name__)

# Each entry builds (first, second), two frozen scipy.stats distributions, anew
# on each call, so no two problems share a mutable object.
PAIRS: dict[str, Callable[[], tuple[Any, Any]]] = {
    "normal-uniform": lambda: (stats.norm(0.0, 1.0), stats.uniform(loc=-1.0, scale=4.0)),
    "normal-exponential": lambda: (stats.norm(0.0, 1.0), stats.expon(scale=1.0)),
    "normal-normal": lambda: (stats.norm(0.0, 1.0), stats.norm(1.0, 2.0)),
    "uniform-uniform": lambda: (stats.uniform(0.0, 1.0), stats.uniform(loc=0.5, scale=2.0)),
    "normal-laplace": lambda: (stats.norm(0.0, 1.0), stats.laplace(loc=0.5, scale=1.0)),
}

# Tolerances passed to scipy.integrate.quad. The tests check the result
# against closed forms to 1e-8.
QUAD_TOLERANCE = 1e-11
QUAD_SUBINTERVALS = 500
CROSSING_GRID = 2000


def _crossings(first: Any, second: Any) -> list[float]:
    """Return the u in (0, 1) where the two quantile functions cross.

    A sign change of F^-1 - G^-1 on a grid of ``CROSSING_GRID`` points is
    refined with Brent's method. Crossings closer together than the grid
    spacing can be missed, which only slows the integration down.
    """
    grid = np.linspace(0.0, 1.0, CROSSING_GRID + 2)[1:-1]
    gap = first.ppf(grid) - second.ppf(grid)
    signs = np.sign(gap)
    roots = []
    for i in np.flatnonzero(signs[:-1] * signs[1:] < 0):
        roots.append(
            optimize.brentq(lambda u: first.ppf(u) - second.ppf(u), grid[i], grid[i + 1], xtol=1e-15)
        )
    return roots


def quantile_distance(first: Any, second: Any, p: int) -> float:
    """Return W_p between two distributions on R from their quantile functions.

    In one dimension the monotone coupling is optimal, so
    W_p^p = integral_0^1 |F^-1(u) - G^-1(u)|^p du for every p >= 1.
    The integral is split at u = 1/2 and wherever the quantile functions cross,
    so each piece is smooth inside and has at most one endpoint where an
    unbounded quantile function diverges. quad's extrapolation handles that
    integrable singularity without evaluating the endpoint.

    Args:
        first: a frozen ``scipy.stats`` distribution with a ``ppf`` method.
        second: the same, for the other distribution.
        p: the order, 1 or 2.

    Returns:
        W_p itself, not W_p^p.
    """

    def integrand(u: float) -> float:
        return float(abs(first.ppf(u) - second.ppf(u)) ** p)

    breaks = sorted({0.0, 0.5, 1.0, *_crossings(first, second)})
    total = 0.0
    for low, high in zip(breaks[:-1], breaks[1:]):
        value, error = integrate.quad(
            integrand,
            low,
            high,
            epsabs=QUAD_TOLERANCE,
            epsrel=QUAD_TOLERANCE,
            limit=QUAD_SUBINTERVALS,
        )
        if error > 1e-9:
            logger.warning("quantile integral on [%g, %g] has error estimate %.3g", low, high, error)
        total += value
    return total ** (1.0 / p)


class OneD(Problem):
    """A fixed pair of distributions on R (d = 1), chosen by name.

    The true W_p comes from the quantile integral, see
    :func:`quantile_distance`, for p = 1 and p = 2.

    Args:
        pair: one of the keys of ``PAIRS``:
            ``"normal-uniform"`` N(0, 1) against U(-1, 3);
            ``"normal-exponential"`` N(0, 1) against Exp(1);
            ``"normal-normal"`` N(0, 1) against N(1, 2^2);
            ``"uniform-uniform"`` U(0, 1) against U(0.5, 2.5);
            ``"normal-laplace"`` N(0, 1) against Laplace(0.5, 1).

    Attributes:
        first: the frozen ``scipy.stats`` distribution of x.
        second: the frozen ``scipy.stats`` distribution of y.

    Raises:
        ValueError: ``pair`` is not one of the keys of ``PAIRS``.
    """

    name: ClassVar[str] = "one-d"
    orders: ClassVar[tuple[int, ...]] = (1, 2)

    def __init__(self, *, pair: str = "normal-uniform") -> None:
        if not isinstance(pair, str) or pair not in PAIRS:
            raise ValueError(f"pair={pair!r} is invalid; expected one of {sorted(PAIRS)}")
        self._pair = pair
        self.first, self.second = PAIRS[pair]()
        self._distances: dict[int, float] = {}

    @property
    def dim(self) -> int:
        return 1

    def params(self) -> dict[str, Any]:
        return {"pair": self._pair}

    def _true_distance(self, p: int) -> float:
        if p not in self._distances:
            self._distances[p] = quantile_distance(self.first, self.second, p)
        return self._distances[p]

    def _sample(self, n: int, m: int, seed: int) -> tuple[Tensor, Tensor]:
        rng = np.random.default_rng(seed)
        x = self.first.rvs(size=n, random_state=rng)
        y = self.second.rvs(size=m, random_state=rng)
        return (
            torch.from_numpy(np.asarray(x, dtype=np.float64)).reshape(n, 1),
            torch.from_numpy(np.asarray(y, dtype=np.float64)).reshape(m, 1),
        )
