"""Mode coverage of samples from a Gaussian mixture."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..validation import check_positive, check_samples

__all__ = ["mode_quality"]


def mode_quality(
    samples: Tensor,
    modes: Tensor,
    std: float,
    n_sigma: float = 3.0,
    min_fraction: float = 0.01,
) -> dict[str, float]:
    """Measure how many samples sit on a mode and how many modes they cover.

    A sample is high quality when its distance to the nearest mode centre is at
    most ``n_sigma * std``. A generator that drops modes keeps a high
    ``hq_fraction`` but covers fewer modes.

    Args:
        samples: generated samples, (n, d).
        modes: mode centres, (k, d).
        std: standard deviation of each mixture component, in the units of the samples.
        n_sigma: radius of a mode, in multiples of ``std``.
        min_fraction: a mode counts as covered when at least this fraction of
            all n samples are high-quality samples nearest to it; in (0, 1].

    Returns:
        ``{"hq_fraction": fraction of high-quality samples, "modes_covered":
        number of covered modes, "n_modes": k}``, all as floats.

    Raises:
        ValueError: empty, non-finite or non-2-D ``samples`` or ``modes``,
            different feature sizes, non-positive ``std`` or ``n_sigma``, or
            ``min_fraction`` outside (0, 1].
    """
    samples = check_samples("samples", samples)
    modes = check_samples("modes", modes)
    if samples.shape[1] != modes.shape[1]:
        raise ValueError(
            f"samples have {samples.shape[1]} features but modes have {modes.shape[1]}; "
            f"expected the same dimension d for both"
        )
    check_positive("std", std)
    check_positive("n_sigma", n_sigma)
    if (
        isinstance(min_fraction, bool)
        or not isinstance(min_fraction, (int, float))
        or not math.isfinite(min_fraction)
        or not 0 < min_fraction <= 1
    ):
        raise ValueError(f"min_fraction={min_fraction!r} is invalid; expected a number in (0, 1]")

    samples = samples.detach().to(torch.float64)
    modes = modes.detach().to(device=samples.device, dtype=torch.float64)
    distances = torch.cdist(samples, modes, compute_mode="donot_use_mm_for_euclid_dist")
    nearest_distance, nearest_mode = distances.min(dim=1)
    high_quality = nearest_distance <= n_sigma * std

    n, k = samples.shape[0], modes.shape[0]
    counts = torch.bincount(nearest_mode[high_quality], minlength=k)
    covered = int((counts >= min_fraction * n).sum())
    return {
        "hq_fraction": float(high_quality.double().mean()),
        "modes_covered": float(covered),
        "n_modes": float(k),
    }
