"""Ray-monotone pairs in a cube: W_1 is known because the optimal potential is built in."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
import torch
from scipy.spatial.distance import cdist
from torch import Tensor

from ..validation import check_positive
from .base import Problem

__all__ = ["Funnels"]

# Size of the fixed sample behind the Monte Carlo true W_1, and the first entry
# of its seed. The rest of the seed is (param_seed, d, funnels), so the sample
# is a property of the problem and not of any sample seed.
MONTE_CARLO_SIZE = 2**17
MONTE_CARLO_SEED = 31415
MONTE_CARLO_CHUNK = 2**13

# The offsets b_k are uniform in [0, OFFSET_FRACTION * half_width].
OFFSET_FRACTION = 0.5

# Source points farther outside the cube than this fraction of half_width are
# rejected by the transport map. The slack covers rounding in the samples.
CUBE_SLACK = 1e-9


def _check_int(name: str, value: object, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name}={value!r} is invalid; expected an integer >= {minimum}")
    return value


class Funnels(Problem):
    """A uniform cube and its image under a map that pulls each point towards a centre.

    The construction follows the idea of Korotin, Kolesov and Burnaev (2022,
    "Kantorovich Strikes Back! Wasserstein GANs are not Optimal Transport?"):
    fix a 1-Lipschitz potential first, then build two distributions whose
    optimal coupling moves mass along its rays, so W_1 is known.

    The potential is u(z) = min_k (||z - c_k|| + b_k), with ``funnels`` centres
    c_k uniform in the cube Q = [-L, L]^d and offsets b_k >= 0. As a minimum of
    1-Lipschitz functions, u is 1-Lipschitz. The target y is uniform on Q.

    For a target y, let k be its active centre (the argmin in u) and
    z(s) = c_k + s v the ray through y, with v = (y - c_k) / ||y - c_k||. The
    centre k stays active on the whole segment from c_k to y: for z on it and
    any j, ||z - c_j|| + b_j >= ||y - c_j|| - ||y - z|| + b_j
    >= ||y - c_k|| + b_k - ||y - z|| = ||z - c_k|| + b_k, by the triangle
    inequality and because k is active at y. The segment continues past y
    until it leaves Q or another centre j takes over. Along the ray
    g_j(s) = ||z(s) - c_j|| + b_j - s - b_k is non-increasing, and with
    w = c_k - c_j and delta = b_k - b_j, squaring g_j(s) = 0 leaves the linear
    equation s = (||w||^2 - delta^2) / (2 (delta - v.w)). It has a root beyond
    y exactly when delta - v.w > 0. The end of the segment is at the smallest
    such root over j, or at the exit from Q if that comes first.

    With t in [0, 1] the position of y on the segment (0 at c_k, 1 at its end),
    the source sample x sits at position t^deg on the same segment. So x lies
    between c_k and y, and u(y) - u(x) = ||y - x||. Any coupling (X, Y) of the
    two distributions has E||X - Y|| >= E u(Y) - E u(X) because u is
    1-Lipschitz, and the pairing x -> y attains that bound. So the pairing is
    optimal, u is an optimal Kantorovich-Rubinstein potential, and
    W_1 = E||x - y||. The same argument holds for the empirical measures of
    paired samples, so the exact LP on them returns mean ||x_i - y_i||.

    The true W_1 is a Monte Carlo mean over 2^17 fixed pairs, and
    :meth:`true_distance_stderr` gives its standard error. Centres and offsets
    come from a numpy generator seeded with ``(param_seed, d, funnels)``.

    Args:
        d: dimension of the samples.
        funnels: number K of centres.
        deg: exponent (>= 1) that pulls source points towards their centre.
            With 1 the two distributions are equal, and larger values
            concentrate the source near the centres.
        half_width: half the side L of the cube, in the units of the samples.
        param_seed: a non-negative integer that selects the centres and offsets.
        paired: if True, each x is derived from the y drawn with it, so
            (x_i, y_i) is the optimal pairing. If False, y is an independent
            uniform draw.

    Raises:
        ValueError: an argument has an invalid type or value; the message names it.
    """

    name: ClassVar[str] = "funnels"
    orders: ClassVar[tuple[int, ...]] = (1,)
    has_transport_map: ClassVar[bool] = True

    def __init__(
        self,
        *,
        d: int = 2,
        funnels: int = 4,
        deg: float = 8.0,
        half_width: float = 1.0,
        param_seed: int = 0,
        paired: bool = False,
    ) -> None:
        self._d = _check_int("d", d, minimum=1)
        self._funnels = _check_int("funnels", funnels, minimum=1)
        if isinstance(deg, bool) or not isinstance(deg, (int, float)) or not math.isfinite(deg) or deg < 1:
            raise ValueError(f"deg={deg!r} is invalid; expected a finite number >= 1")
        check_positive("half_width", half_width)
        self._param_seed = _check_int("param_seed", param_seed, minimum=0)
        if not isinstance(paired, bool):
            raise ValueError(f"paired={paired!r} is invalid; expected True or False")
        self._deg = float(deg)
        self._half_width = float(half_width)
        self._paired = paired

        rng = np.random.default_rng((self._param_seed, self._d, self._funnels))
        self._centres = self._half_width * rng.uniform(-1.0, 1.0, size=(self._funnels, self._d))
        self._offsets = self._half_width * rng.uniform(0.0, OFFSET_FRACTION, size=self._funnels)
        self._centre_sq_distances = cdist(self._centres, self._centres, "sqeuclidean")

        # The draws are uniform on [-1, 1]^d and scaled, so L only rescales W_1.
        monte_carlo_rng = np.random.default_rng((MONTE_CARLO_SEED, self._param_seed, self._d, self._funnels))
        targets = self._uniform(monte_carlo_rng, MONTE_CARLO_SIZE)
        lengths = np.empty(MONTE_CARLO_SIZE)
        # Chunks keep the (chunk, funnels) intermediates in cache.
        for start in range(0, MONTE_CARLO_SIZE, MONTE_CARLO_CHUNK):
            chunk = targets[start : start + MONTE_CARLO_CHUNK]
            lengths[start : start + MONTE_CARLO_CHUNK] = np.linalg.norm(chunk - self._pull_to_centres(chunk), axis=1)
        self._distance = float(lengths.mean())
        self._stderr = float(lengths.std(ddof=1) / math.sqrt(MONTE_CARLO_SIZE))

    @property
    def dim(self) -> int:
        return self._d

    @property
    def centres(self) -> Tensor:
        """Centres c_k of the potential, shape (funnels, d), float64."""
        return torch.from_numpy(self._centres.copy())

    @property
    def offsets(self) -> Tensor:
        """Offsets b_k >= 0 of the potential, shape (funnels,), float64."""
        return torch.from_numpy(self._offsets.copy())

    def params(self) -> dict[str, Any]:
        return {
            "d": self._d,
            "funnels": self._funnels,
            "deg": self._deg,
            "half_width": self._half_width,
            "param_seed": self._param_seed,
            "paired": self._paired,
        }

    def potential(self, z: Tensor) -> Tensor:
        """Evaluate the optimal dual potential u(z) = min_k (||z - c_k|| + b_k).

        Differentiable in z, so autograd gives the unit vector (z - c_k) / ||z - c_k||
        of the active centre as its gradient.

        Args:
            z: points, shape (n, d).

        Returns:
            u(z), shape (n,), in z's dtype and on z's device.

        Raises:
            ValueError: ``z`` is not a tensor of shape (n, d).
        """
        if not isinstance(z, Tensor) or z.dim() != 2 or z.shape[1] != self._d:
            shape = tuple(z.shape) if isinstance(z, Tensor) else type(z).__name__
            raise ValueError(f"z has shape {shape}; expected (n, {self._d})")
        centres = torch.from_numpy(self._centres).to(dtype=z.dtype, device=z.device)
        offsets = torch.from_numpy(self._offsets).to(dtype=z.dtype, device=z.device)
        distances = torch.linalg.vector_norm(z[:, None, :] - centres[None, :, :], dim=2)
        return (distances + offsets).min(dim=1).values

    def _true_distance(self, p: int) -> float:
        return self._distance

    def _true_distance_stderr(self, p: int) -> float:
        return self._stderr

    def _sample(self, n: int, m: int, seed: int) -> tuple[Tensor, Tensor]:
        if self._paired and m != n:
            raise ValueError(
                f"m={m} is invalid for paired funnels with n={n}; "
                f"expected m=None or m=n, because each x is derived from one y"
            )
        rng = np.random.default_rng(seed)
        if self._paired:
            y = self._uniform(rng, n)
            x = self._pull_to_centres(y)
        else:
            x = self._pull_to_centres(self._uniform(rng, n))
            y = self._uniform(rng, m)
        return torch.from_numpy(x), torch.from_numpy(y)

    def _transport_map(self, x: Tensor) -> Tensor:
        """Move each source point out along its ray, from position r to r^(1/deg).

        NOTE: T is steep near the centres, because a point at distance s from
        its centre has a ray direction known only to about 1e-16 / s. T(x) then
        has an absolute error of about 1e-16 L / s, about 1e-10 L at s = 1e-6.
        With deg = 8 in d = 2, about 3% of source points lie that close to a
        centre. A point exactly at a centre has no ray and is returned unchanged.
        """
        points = x.detach().to(device="cpu", dtype=torch.float64).numpy()
        outside = np.abs(points).max(axis=1) > self._half_width * (1 + CUBE_SLACK)
        if outside.any():
            raise ValueError(
                f"x has {int(outside.sum())} rows outside the cube [-{self._half_width}, "
                f"{self._half_width}]^{self._d}; the transport map is defined only on the "
                f"support of the source distribution"
            )
        active, radius, direction = self._rays(points)
        end = self._ray_end(active, radius, direction)
        safe_end = np.where(end > 0, end, 1.0)
        position = np.clip(radius / safe_end, 0.0, 1.0)
        moved = self._centres[active] + (end * position ** (1.0 / self._deg))[:, None] * direction
        moved = np.where((radius > 0)[:, None], moved, points)
        return torch.from_numpy(moved).to(dtype=x.dtype, device=x.device)

    # ---- the construction, in numpy float64 ------------------------------------

    def _uniform(self, rng: np.random.Generator, size: int) -> np.ndarray:
        return self._half_width * rng.uniform(-1.0, 1.0, size=(size, self._d))

    def _rays(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Return each point's active centre k, its distance s to c_k and the unit ray direction."""
        distances = cdist(points, self._centres)
        active = np.argmin(distances + self._offsets, axis=1)
        radius = distances[np.arange(len(points)), active]
        safe_radius = np.where(radius > 0, radius, 1.0)
        direction = (points - self._centres[active]) / safe_radius[:, None]
        return active, radius, direction

    def _ray_end(self, active: np.ndarray, radius: np.ndarray, direction: np.ndarray) -> np.ndarray:
        """Return the distance from c_k to the end of each ray: the cube exit or a takeover."""
        starts = self._centres[active]

        # Exit from the cube: the first coordinate to reach +-L.
        bound = np.where(direction > 0, self._half_width, -self._half_width)
        with np.errstate(divide="ignore", invalid="ignore"):
            exits = np.where(direction != 0, (bound - starts) / direction, np.inf)
        end = exits.min(axis=1)

        # Takeover by centre j: with w = c_k - c_j and delta = b_k - b_j, the root
        # is s = (||w||^2 - delta^2) / (2 (delta - v.w)), real when delta > v.w.
        half_denominator = direction @ self._centres.T
        half_denominator -= np.einsum("nd,nd->n", direction, starts)[:, None]
        delta = self._offsets[active][:, None] - self._offsets[None, :]
        half_denominator += delta
        numerator = self._centre_sq_distances[active]
        numerator -= delta * delta
        roots = np.full_like(numerator, np.inf)
        np.divide(numerator, 2.0 * half_denominator, out=roots, where=half_denominator > 0)
        # Centre k itself gives 0 / 0 in exact arithmetic, but rounding in v.w
        # can turn it into a spurious root at s = 0.
        roots[np.arange(len(active)), active] = np.inf
        end = np.minimum(end, roots.min(axis=1))

        # In exact arithmetic every root lies beyond the point itself; rounding
        # and ties between centres can put one slightly before it.
        return np.maximum(end, radius)

    def _pull_to_centres(self, targets: np.ndarray) -> np.ndarray:
        """Return the source point paired with each target: position t -> t^deg on its ray."""
        active, radius, direction = self._rays(targets)
        end = self._ray_end(active, radius, direction)
        safe_end = np.where(end > 0, end, 1.0)
        position = np.clip(radius / safe_end, 0.0, 1.0)
        sources = self._centres[active] + (end * position**self._deg)[:, None] * direction
        return np.where((radius > 0)[:, None], sources, targets)
