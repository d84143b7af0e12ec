"""Distances between a generator's samples and held-out data."""

from __future__ import annotations

import logging

import numpy as np
import ot
import scipy.linalg
import torch
from torch import Tensor

from ..validation import check_positive, check_samples

__all__ = ["frechet_distance", "w2_heldout"]

logger = logging.getLogger(__name__)

# Network-simplex iteration cap for ot.emd2. POT's default (100,000) is too low
# for 1,000 x 1,000 problems, which need a few hundred thousand pivots.
EMD_MAX_ITER = 10**7


def _as_float64(name: str, tensor: Tensor) -> np.ndarray:
    return check_samples(name, tensor).detach().to("cpu", torch.float64).numpy()


def _check_same_features(first: np.ndarray, second: np.ndarray, names: tuple[str, str]) -> None:
    if first.shape[1] != second.shape[1]:
        raise ValueError(
            f"{names[0]} have {first.shape[1]} features per sample but {names[1]} have "
            f"{second.shape[1]}; expected the same number for both"
        )


def w2_heldout(samples: Tensor, reference: Tensor, max_n: int = 1000, seed: int = 0) -> float:
    """Compute the exact W_2 between generated samples and a held-out set.

    Both sets are flattened to (n, d) and, when larger than ``max_n``, reduced
    to ``max_n`` points drawn without replacement by a generator seeded with
    ``seed``. The transport LP with cost ||x - y||_2^2 is solved by POT's
    network simplex (``ot.emd2``) in float64.

    Args:
        samples: generated samples, (n, d) or (n, C, H, W).
        reference: held-out samples of the same feature shape, (m, ...).
        max_n: the maximum number of points used from each set. The solve
            took about 0.4 s for 1,000 points per set on a 2-core test machine.
        seed: seed of the subsampling.

    Returns:
        W_2 between the two empirical measures, in the units of the samples.

    Raises:
        ValueError: empty or non-finite inputs, different numbers of features,
            a non-positive ``max_n`` or a negative ``seed``.
    """
    x = _as_float64("samples", samples)
    y = _as_float64("reference", reference)
    _check_same_features(x, y, ("samples", "reference"))
    check_positive("max_n", max_n, integer=True)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed={seed!r} is invalid; expected a non-negative integer")

    rng = np.random.default_rng(seed)
    if len(x) > max_n:
        x = x[rng.choice(len(x), size=max_n, replace=False)]
    if len(y) > max_n:
        y = y[rng.choice(len(y), size=max_n, replace=False)]

    a = np.full(len(x), 1.0 / len(x))
    b = np.full(len(y), 1.0 / len(y))
    cost = ot.dist(x, y, metric="sqeuclidean")
    value, log = ot.emd2(a, b, cost, numItermax=EMD_MAX_ITER, log=True)
    if log.get("warning"):
        logger.warning("ot.emd2 in w2_heldout did not solve exactly: %s", log["warning"])
    return float(np.sqrt(max(float(value), 0.0)))


def _sqrtm_psd(matrix: np.ndarray) -> np.ndarray:
    """Square root of a symmetric positive semi-definite matrix.

    Eigenvalues below zero come from rounding and are set to zero, so singular
    covariances (fewer samples than features, constant features) stay valid.
    """
    eigenvalues, eigenvectors = scipy.linalg.eigh(matrix)
    roots = np.sqrt(np.clip(eigenvalues, 0.0, None))
    return (eigenvectors * roots) @ eigenvectors.T


def frechet_distance(features_a: Tensor, features_b: Tensor) -> float:
    """Compute the Frechet distance between Gaussians fitted to two feature sets.

    With means m_a, m_b and covariances S_a, S_b (unbiased, over samples) it is

        ||m_a - m_b||^2 + tr(S_a + S_b - 2 (S_a^1/2 S_b S_a^1/2)^1/2),

    the squared W_2 between N(m_a, S_a) and N(m_b, S_b) (Dowson and Landau 1982,
    "The Frechet distance between multivariate normal distributions"), as used
    by FID (Heusel et al. 2017, "GANs Trained by a Two Time-Scale Update Rule
    Converge to a Local Nash Equilibrium"). Matrix square roots come from
    symmetric eigendecompositions with rounding-negative eigenvalues set to
    zero, so rank-deficient covariances are handled.

    Args:
        features_a: features of one set, (n_a, k), n_a >= 2.
        features_b: features of the other set, (n_b, k), n_b >= 2.

    Returns:
        The squared distance, in squared feature units; 0 for identical sets.

    Raises:
        ValueError: empty, non-finite or non-2-D inputs, fewer than 2 rows, or
            different numbers of features.
    """
    a = _as_float64("features_a", features_a)
    b = _as_float64("features_b", features_b)
    _check_same_features(a, b, ("features_a", "features_b"))
    for name, features in (("features_a", a), ("features_b", b)):
        if len(features) < 2:
            raise ValueError(
                f"{name} has {len(features)} row; expected at least 2 to estimate a covariance"
            )

    mean_a, mean_b = a.mean(axis=0), b.mean(axis=0)
    cov_a = np.atleast_2d(np.cov(a, rowvar=False))
    cov_b = np.atleast_2d(np.cov(b, rowvar=False))

    root_a = _sqrtm_psd(cov_a)
    middle = root_a @ cov_b @ root_a
    middle = (middle + middle.T) / 2
    cross = np.sqrt(np.clip(scipy.linalg.eigvalsh(middle), 0.0, None)).sum()

    value = float(np.sum((mean_a - mean_b) ** 2) + np.trace(cov_a) + np.trace(cov_b) - 2 * cross)
    return max(value, 0.0)
