"""A distribution and its translate: W_p equals the length of the shift."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from ..validation import check_positive
from .base import Problem

__all__ = ["Translation"]

# Seed of the direction of the shift. It is combined with d only, so every
# sample seed and every `shift` use the same direction in a given dimension.
DIRECTION_SEED = 20170


class Translation(Problem):
    """x ~ N(0, I_d) against y = x' + t, with t a fixed vector of length ``shift``.

    For any coupling of X ~ mu and Y ~ mu + t, Jensen's inequality gives
    E||X - Y||^p >= ||E[X - Y]||^p = ||t||^p for p >= 1, and the coupling
    Y = X + t attains it. So W_p(mu, mu + t) = ||t|| for p = 1 and p = 2, and the
    same argument holds for an empirical measure and its translate. The optimal
    transport map is T(x) = x + t for both orders.

    The direction t / ||t|| is drawn once from a numpy generator seeded with
    ``(DIRECTION_SEED, d)``. It is a property of the problem, not of the sample
    seed, so every call to :meth:`sample` shifts by the same t.

    Args:
        d: dimension of the samples.
        shift: length ||t|| of the translation, in the units of the samples.
        paired: if True, y = x + t for the same draws x, so the empirical
            W_p between the two samples is exactly ``shift`` as well; if False,
            y is the translate of an independent draw x'.

    Raises:
        ValueError: ``d`` is not a positive integer, ``shift`` is not finite and
            positive, or ``paired`` is not a bool.
    """

    name: ClassVar[str] = "translation"
    orders: ClassVar[tuple[int, ...]] = (1, 2)
    has_transport_map: ClassVar[bool] = True

    def __init__(self, *, d: int = 2, shift: float = 1.0, paired: bool = False) -> None:
        check_positive("d", d, integer=True)
        check_positive("shift", shift)
        if not isinstance(paired, bool):
            raise ValueError(f"paired={paired!r} is invalid; expected True or False")
        self._d = int(d)
        self._shift = float(shift)
        self._paired = paired

        direction = np.random.default_rng((DIRECTION_SEED, self._d)).standard_normal(self._d)
        direction /= np.linalg.norm(direction)
        self._direction = torch.from_numpy(direction)

    @property
    def dim(self) -> int:
        return self._d

    @property
    def true_direction(self) -> Tensor:
        """Unit vector t / ||t||, shape (d,), float64."""
        return self._direction.clone()

    @property
    def shift_vector(self) -> Tensor:
        """The translation t, shape (d,), float64, of length ``shift``."""
        return self._shift * self._direction

    def params(self) -> dict[str, Any]:
        return {"d": self._d, "shift": self._shift, "paired": self._paired}

    def _true_distance(self, p: int) -> float:
        return self._shift

    def _transport_map(self, x: Tensor) -> Tensor:
        return x + self.shift_vector.to(dtype=x.dtype, device=x.device)

    def _sample(self, n: int, m: int, seed: int) -> tuple[Tensor, Tensor]:
        if self._paired and m != n:
            raise ValueError(
                f"m={m} is invalid for a paired translation with n={n}; "
                f"expected m=None or m=n, because y = x + t"
            )
        generator = torch.Generator().manual_seed(seed)
        x = torch.randn(n, self._d, generator=generator, dtype=torch.float64)
        source = x if self._paired else torch.randn(m, self._d, generator=generator, dtype=torch.float64)
        y = source + self.shift_vector
        return x, y
