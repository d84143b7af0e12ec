"""Two Gaussians: W_2 has a closed form (the Bures-Wasserstein distance)."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import ot
import torch
from torch import Tensor

from ..validation import check_positive
from .base import Problem

__all__ = ["Gaussians"]

# Every covariance gets this much of the identity added, so its smallest
# eigenvalue is at least this and the Cholesky factor is well conditioned.
COVARIANCE_FLOOR = 0.1


class Gaussians(Problem):
    """N(m_x, S_x) against N(m_y, S_y), with means and covariances drawn once.

    The true distance is the closed form of Dowson and Landau (1982, "The
    Frechet distance between multivariate normal distributions") and Olkin and
    Pukelsheim (1982, "The distance between two random vectors with given
    dispersion matrices"):

        W_2^2 = ||m_x - m_y||^2 + tr(S_x + S_y - 2 (S_x^1/2 S_y S_x^1/2)^1/2),

    computed by ``ot.gaussian.bures_wasserstein_distance``. Only p = 2 has a
    closed form.

    The optimal map is affine, T(x) = m_y + A (x - m_x), with the symmetric
    positive definite matrix A = S_x^-1/2 (S_x^1/2 S_y S_x^1/2)^1/2 S_x^-1/2
    computed by ``ot.gaussian.bures_wasserstein_mapping``. It is the gradient
    of a convex quadratic and pushes N(m_x, S_x) to N(m_y, S_y).

    The means are standard normal vectors and each covariance is
    A A^T / d + 0.1 I with A a d x d standard normal matrix. All of them come
    from a numpy generator seeded with ``(param_seed, d)``, so the sample seed
    does not change them.

    Args:
        d: dimension of the samples.
        param_seed: a non-negative integer that selects the pair of Gaussians.

    Raises:
        ValueError: ``d`` is not a positive integer or ``param_seed`` is not a
            non-negative integer.
    """

    name: ClassVar[str] = "gaussians"
    orders: ClassVar[tuple[int, ...]] = (2,)
    has_transport_map: ClassVar[bool] = True

    def __init__(self, *, d: int = 2, param_seed: int = 0) -> None:
        check_positive("d", d, integer=True)
        if isinstance(param_seed, bool) or not isinstance(param_seed, int) or param_seed < 0:
            raise ValueError(f"param_seed={param_seed!r} is invalid; expected a non-negative integer")
        self._d = int(d)
        self._param_seed = param_seed

        rng = np.random.default_rng((param_seed, self._d))
        self._means = [rng.standard_normal(self._d) for _ in range(2)]
        self._covariances = []
        for _ in range(2):
            a = rng.standard_normal((self._d, self._d))
            self._covariances.append(a @ a.T / self._d + COVARIANCE_FLOOR * np.eye(self._d))
        self._cholesky = [torch.from_numpy(np.linalg.cholesky(c)) for c in self._covariances]
        # T(x) = x A + b for row samples x, because A is symmetric.
        linear, bias = ot.gaussian.bures_wasserstein_mapping(
            self._means[0], self._means[1], self._covariances[0], self._covariances[1]
        )
        self._map_linear = torch.from_numpy(np.asarray(linear, dtype=np.float64))
        self._map_bias = torch.from_numpy(np.asarray(bias, dtype=np.float64).reshape(self._d))

    @property
    def dim(self) -> int:
        return self._d

    @property
    def means(self) -> tuple[np.ndarray, np.ndarray]:
        """Means m_x and m_y, each of shape (d,)."""
        return self._means[0].copy(), self._means[1].copy()

    @property
    def covariances(self) -> tuple[np.ndarray, np.ndarray]:
        """Covariances S_x and S_y, each symmetric positive definite of shape (d, d)."""
        return self._covariances[0].copy(), self._covariances[1].copy()

    def params(self) -> dict[str, Any]:
        return {"d": self._d, "param_seed": self._param_seed}

    def _true_distance(self, p: int) -> float:
        return float(
            ot.gaussian.bures_wasserstein_distance(
                self._means[0], self._means[1], self._covariances[0], self._covariances[1]
            )
        )

    def _transport_map(self, x: Tensor) -> Tensor:
        linear = self._map_linear.to(dtype=x.dtype, device=x.device)
        return x @ linear + self._map_bias.to(dtype=x.dtype, device=x.device)

    def _sample(self, n: int, m: int, seed: int) -> tuple[Tensor, Tensor]:
        generator = torch.Generator().manual_seed(seed)
        samples = []
        for size, mean, factor in zip((n, m), self._means, self._cholesky):
            z = torch.randn(size, self._d, generator=generator, dtype=torch.float64)
            samples.append(torch.from_numpy(mean) + z @ factor.T)
        return samples[0], samples[1]
