"""The contract of a problem: two distributions whose true W_p is known."""

from __future__ import annotations

import abc
from typing import Any, ClassVar

import torch
from torch import Tensor

__all__ = ["Problem", "check_seed", "check_sizes"]


class Problem(abc.ABC):
    """Two probability distributions on R^d with a known Wasserstein distance.

    Subclasses take their parameters as keyword arguments, validate them in
    ``__init__`` and fix every random choice that defines the distributions
    (directions, means, covariances) there, so the true distance does not depend
    on the seed passed to :meth:`sample`.

    A problem whose optimal transport map T from the first distribution to the
    second is known sets ``has_transport_map`` and implements
    :meth:`_transport_map`; :meth:`true_gradient` then gives the gradient of
    the true W_p with respect to each source sample.

    Attributes:
        name: the registry name, as passed to ``otbench.problems.get``.
        orders: the orders p for which :meth:`true_distance` is known.
        has_transport_map: whether :meth:`transport_map` is available.
    """

    name: ClassVar[str]
    orders: ClassVar[tuple[int, ...]]
    has_transport_map: ClassVar[bool] = False

    @property
    @abc.abstractmethod
    def dim(self) -> int:
        """Dimension d of one sample."""

    @abc.abstractmethod
    def params(self) -> dict[str, Any]:
        """Return the resolved parameters, as stored in benchmark records."""

    @abc.abstractmethod
    def _true_distance(self, p: int) -> float:
        """Return the true W_p for a ``p`` already checked against ``orders``."""

    @abc.abstractmethod
    def _sample(self, n: int, m: int, seed: int) -> tuple[Tensor, Tensor]:
        """Draw the two samples after the sizes and seed were checked."""

    def _transport_map(self, x: Tensor) -> Tensor:
        """Return T(x) for samples x already checked; only when ``has_transport_map``."""
        raise NotImplementedError

    def _true_distance_stderr(self, p: int) -> float:
        """Standard error of a Monte Carlo true distance; 0 for a closed form."""
        return 0.0

    def true_distance_stderr(self, p: int) -> float:
        """Return the standard error of :meth:`true_distance`, in the units of the samples.

        Closed forms give 0. A problem whose true W_p is a Monte Carlo mean over
        a fixed large sample (``funnels``, ``brenier``) gives that mean's
        standard error, which bounds how precisely any estimate can be judged.

        Raises:
            ValueError: ``p`` is not in ``self.orders``.
        """
        self.true_distance(p)
        return float(self._true_distance_stderr(int(p)))

    def transport_map(self, x: Tensor) -> Tensor:
        """Return the optimal transport map T at source samples x.

        For every order in ``orders``, moving each x to T(x) is an optimal
        coupling, so T(x) - x is the true transport direction at x. For p = 1
        optimal maps need not be unique, but every optimal coupling moves x
        along the same unit vector, (T(x) - x) / ||T(x) - x||.

        Args:
            x: source samples, shape (n, d), from the support of the first
                distribution.

        Returns:
            T(x), shape (n, d), with x's dtype.

        Raises:
            ValueError: the problem has no known map, or ``x`` is not (n, d).
        """
        if not self.has_transport_map:
            raise ValueError(f"problem {self.name!r} has no known transport map")
        if not isinstance(x, Tensor) or x.dim() != 2 or x.shape[1] != self.dim:
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"x has shape {shape}; expected (n, {self.dim}) for problem {self.name!r}")
        return self._transport_map(x)

    def true_gradient(self, x: Tensor, p: int) -> Tensor:
        """Return the reference gradient -dW_p/dx_i for x, the n source samples of a batch.

        This is the first variation of the population W_p at each x_i, divided
        by n: with T the optimal map, the first variation of W_p^p at x is
        p ||x - T(x)||^(p-2) (x - T(x)), and the chain rule for
        W_p = (W_p^p)^(1/p) gives

            -dW_1/dx_i = u_i / n,                  u_i = (T(x_i) - x_i) / ||T(x_i) - x_i||,
            -dW_2/dx_i = (T(x_i) - x_i) / (n W_2).

        It is the direction in which a generator's sample should move, and how
        fast. On paired samples (y_i = T(x_i)) it equals the gradient of the
        empirical W_p, up to the factor W_p / W_p(empirical) at p = 2. Against an
        independent target sample the empirical gradient differs from it by
        sampling noise, which shrinks as n grows, so a cosine below 1 measures
        both the estimator and that noise.

        Args:
            x: source samples, shape (n, d).
            p: the order, one of ``orders``.

        Returns:
            Shape (n, d), with x's dtype; rows where T(x_i) = x_i are 0.

        Raises:
            ValueError: ``p`` is not in ``orders`` or the map is unknown.
        """
        distance = self.true_distance(p)
        displacement = self.transport_map(x) - x
        n = x.shape[0]
        if p == 1:
            length = torch.linalg.vector_norm(displacement, dim=1, keepdim=True)
            return torch.where(length > 0, displacement / length.clamp_min(torch.finfo(x.dtype).tiny), 0.0) / n
        return displacement / (n * distance)

    def true_distance(self, p: int) -> float:
        """Return the true W_p between the two distributions, for cost ||x - y||_2^p.

        Args:
            p: the order; one of ``self.orders``.

        Returns:
            W_p itself (not W_p^p), in the units of the samples.

        Raises:
            ValueError: ``p`` is not in ``self.orders``.
        """
        if isinstance(p, bool) or not isinstance(p, (int, float)) or p not in self.orders:
            raise ValueError(
                f"p={p!r} is invalid for problem {self.name!r}: its true W_p is known "
                f"only for p in {list(self.orders)}"
            )
        return self._true_distance(int(p))

    def sample(self, n: int, seed: int, m: int | None = None) -> tuple[Tensor, Tensor]:
        """Draw ``n`` samples of the first distribution and ``m`` of the second.

        Args:
            n: number of samples x of the first distribution.
            seed: a non-negative integer; the same seed always returns the same
                samples, and the global torch and numpy random states are not used.
            m: number of samples y of the second distribution; ``n`` if None.

        Returns:
            ``(x, y)`` with shapes (n, d) and (m, d), float64 on the CPU.

        Raises:
            ValueError: ``n`` or ``m`` is not a positive integer, or ``seed`` is
                not a non-negative integer.
        """
        n, m = check_sizes(n, m)
        seed = check_seed(seed)
        x, y = self._sample(n, m, seed)
        assert x.shape == (n, self.dim)
        assert y.shape == (m, self.dim)
        return x, y

    def __repr__(self) -> str:
        args = ", ".join(f"{key}={value!r}" for key, value in self.params().items())
        return f"{type(self).__name__}({args})"


def check_seed(seed: object) -> int:
    """Return ``seed`` if it is a non-negative int, else raise ``ValueError``."""
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed={seed!r} is invalid; expected a non-negative integer")
    return seed


def check_sizes(n: object, m: object) -> tuple[int, int]:
    """Return ``(n, m)`` with ``m`` defaulting to ``n``; raise unless both are positive ints."""
    if m is None:
        m = n
    for name, value in (("n", n), ("m", m)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}={value!r} is invalid; expected a positive integer")
    return int(n), int(m)  # type: ignore[call-overload]
