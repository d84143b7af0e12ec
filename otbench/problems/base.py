"""The contract of a problem: two distributions whose true W_p is known."""

from __future__ import annotations

import abc
from typing import Any, ClassVar

from torch import Tensor

__all__ = ["Problem", "check_seed", "check_sizes"]


class Problem(abc.ABC):
    """Two probability distributions on R^d with a known Wasserstein distance.

    Subclasses take their parameters as keyword arguments, validate them in
    ``__init__`` and fix every random choice that defines the distributions
    (directions, means, covariances) there, so the true distance does not depend
    on the seed passed to :meth:`sample`.

    Attributes:
        name: the registry name, as passed to ``otbench.problems.get``.
        orders: the orders p for which :meth:`true_distance` is known.
    """

    name: ClassVar[str]
    orders: ClassVar[tuple[int, ...]]

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
