"""A Gaussian mixture and its image under the gradient of a convex network: W_2 by Brenier's theorem."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .base import Problem

__all__ = ["Brenier"]

# The mixture: equal weights, component means at distance MEAN_NORM from the
# origin in uniformly random directions, isotropic standard deviation COMPONENT_STD.
MEAN_NORM = 1.5
COMPONENT_STD = 0.5

# psi(x) - STRONG_CONVEXITY ||x||^2 / 2 is convex, so every Hessian of psi has
# eigenvalues >= STRONG_CONVEXITY. With 1, the displacement T(x) - x is itself
# the gradient of a convex function.
STRONG_CONVEXITY = 1.0

# The network's part of grad psi is centred and scaled on a pilot sample of
# PILOT_SIZE points so that its root mean square length is DISPLACEMENT_RMS.
# The true W_2 is then close to DISPLACEMENT_RMS for every d.
DISPLACEMENT_RMS = 1.0
PILOT_SIZE = 4096

# Size of the fixed sample behind the Monte Carlo true W_2, and the first entry
# of the seed shared with the pilot sample. The rest of the seed is the
# problem's parameters, so the sample does not depend on any sample seed.
MONTE_CARLO_SIZE = 2**16
MONTE_CARLO_SEED = 27182


def _check_int(name: str, value: object, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name}={value!r} is invalid; expected an integer >= {minimum}")
    return value


class Brenier(Problem):
    """A Gaussian mixture x against y = grad psi(x), with psi a fixed strongly convex function.

    The construction follows the idea of Korotin et al. (2021, "Do Neural
    Optimal Transport Solvers Work? A Continuous Wasserstein-2 Benchmark"): pick
    a convex psi and push the source through its gradient. By Brenier's
    theorem the gradient of a convex function is the optimal map for the cost
    ||x - y||^2 from an absolutely continuous source, so
    W_2 = sqrt(E||x - grad psi(x)||^2).

    psi is an input-convex network (Amos, Xu and Kolter 2017, "Input Convex
    Neural Networks") plus a quadratic:

        h_1 = softplus(W_0 x + b_0),
        h_2 = softplus(W_z h_1 + W_x x + b_1),        W_z >= 0,
        f(x) = w . h_2,                              w >= 0,
        psi(x) = ||x||^2 / 2 + beta (f(x) - g . x).

    h_1 is convex in x because softplus is convex and non-decreasing. h_2 adds
    non-negative multiples of convex functions and an affine term before another
    convex non-decreasing softplus, so it is convex too, and so is f. The
    linear term g . x keeps convexity, and the quadratic makes psi strongly
    convex with modulus 1, so grad psi is one-to-one. g is the mean of grad f
    on a fixed pilot sample and beta > 0 scales beta (grad f - g) to a root mean
    square length of 1 there. So the displacement y - x has mean near 0, length
    near 1, and the true W_2 is close to 1 in every dimension.

    The mixture has ``components`` equal-weight components with means of norm
    1.5 and standard deviation 0.5. The means and network weights come from a
    numpy generator seeded with ``(param_seed, d, components, hidden)``. The
    true W_2 is a Monte Carlo mean over 2^16 fixed source points, and
    :meth:`true_distance_stderr` gives its standard error.

    Args:
        d: dimension of the samples.
        components: number of mixture components.
        hidden: width of each of the two hidden layers of the network.
        param_seed: a non-negative integer that selects the mixture and psi.
        paired: if True, y = grad psi(x) for the same draws x, so (x_i, y_i) is
            the optimal pairing of the two samples. If False, y is the image
            of an independent draw x'.

    Raises:
        ValueError: an argument has an invalid type or value; the message names it.
    """

    name: ClassVar[str] = "brenier"
    orders: ClassVar[tuple[int, ...]] = (2,)
    has_transport_map: ClassVar[bool] = True

    def __init__(
        self,
        *,
        d: int = 2,
        components: int = 4,
        hidden: int = 64,
        param_seed: int = 0,
        paired: bool = False,
    ) -> None:
        self._d = _check_int("d", d, minimum=1)
        self._components = _check_int("components", components, minimum=1)
        self._hidden = _check_int("hidden", hidden, minimum=1)
        self._param_seed = _check_int("param_seed", param_seed, minimum=0)
        if not isinstance(paired, bool):
            raise ValueError(f"paired={paired!r} is invalid; expected True or False")
        self._paired = paired

        rng = np.random.default_rng((self._param_seed, self._d, self._components, self._hidden))
        directions = rng.standard_normal((self._components, self._d))
        directions /= np.linalg.norm(directions, axis=1, keepdims=True)
        self._means = MEAN_NORM * directions
        # Normal tensors even inside a caller's inference_mode, so that autograd can differentiate psi.
        with torch.inference_mode(False):
            self._init_network(rng)

            monte_carlo_rng = np.random.default_rng(
                (MONTE_CARLO_SEED, self._param_seed, self._d, self._components, self._hidden)
            )
            pilot = self._draw_mixture(monte_carlo_rng, PILOT_SIZE)
            network_gradient = self._gradient(pilot, self._network)
            self._linear = network_gradient.mean(dim=0)
            centred = network_gradient - self._linear
            self._scale = DISPLACEMENT_RMS / float(centred.square().sum(dim=1).mean().sqrt())

            sources = self._draw_mixture(monte_carlo_rng, MONTE_CARLO_SIZE)
            squared = (self._gradient(sources, self._psi) - sources).square().sum(dim=1)
            self._distance = float(squared.mean().sqrt())
            # Delta method: W_2 = sqrt(M) has standard error se(M) / (2 sqrt(M)).
            squared_stderr = float(squared.std()) / math.sqrt(MONTE_CARLO_SIZE)
            self._stderr = squared_stderr / (2 * self._distance)

    def _init_network(self, rng: np.random.Generator) -> None:
        """Draw the network's weights. Input weights have variance 2 / d, so pre-activations are of order 1."""
        hidden, d = self._hidden, self._d
        input_scale = math.sqrt(2.0 / d)
        weights = {
            "input_first": rng.standard_normal((hidden, d)) * input_scale,
            "bias_first": rng.standard_normal(hidden),
            "hidden": np.abs(rng.standard_normal((hidden, hidden))) / hidden,
            "input_second": rng.standard_normal((hidden, d)) * input_scale,
            "bias_second": rng.standard_normal(hidden),
            "output": np.abs(rng.standard_normal(hidden)) / hidden,
        }
        # A rough centring of h_2's pre-activations: subtract what the
        # hidden-to-hidden weights add when every unit of h_1 is softplus(0) = log 2.
        weights["bias_second"] -= weights["hidden"].sum(axis=1) * math.log(2.0)
        self._weights = {key: torch.from_numpy(value) for key, value in weights.items()}

    @property
    def dim(self) -> int:
        return self._d

    @property
    def means(self) -> Tensor:
        """Means of the mixture components, shape (components, d), float64."""
        return torch.from_numpy(self._means.copy())

    @property
    def strong_convexity(self) -> float:
        """Modulus alpha of strong convexity: every Hessian of psi is >= alpha I."""
        return STRONG_CONVEXITY

    def params(self) -> dict[str, Any]:
        return {
            "d": self._d,
            "components": self._components,
            "hidden": self._hidden,
            "param_seed": self._param_seed,
            "paired": self._paired,
        }

    def psi(self, x: Tensor) -> Tensor:
        """Evaluate the convex potential psi, whose gradient is the transport map.

        Args:
            x: points, shape (n, d).

        Returns:
            psi(x), shape (n,), in x's dtype and on x's device; differentiable in x.

        Raises:
            ValueError: ``x`` is not a tensor of shape (n, d).
        """
        self._check_points(x)
        return self._psi(x)

    def hessian(self, x: Tensor) -> Tensor:
        """Compute the Hessian of psi at each point, by ``torch.func``.

        Args:
            x: points, shape (n, d).

        Returns:
            Shape (n, d, d), symmetric, in x's dtype and on x's device.

        Raises:
            ValueError: ``x`` is not a tensor of shape (n, d).
        """
        self._check_points(x)

        def psi_one(point: Tensor) -> Tensor:
            return self._psi(point[None, :])[0]

        # Reverse over reverse mode: torch.func.hessian uses forward mode, whose
        # first call compiles decompositions with the deprecated torch.jit.script.
        return torch.func.vmap(torch.func.jacrev(torch.func.grad(psi_one)))(x.detach())

    def _true_distance(self, p: int) -> float:
        return self._distance

    def _true_distance_stderr(self, p: int) -> float:
        return self._stderr

    def _transport_map(self, x: Tensor) -> Tensor:
        points = x.detach().to(torch.float64)
        return self._gradient(points, self._psi).to(dtype=x.dtype)

    def _sample(self, n: int, m: int, seed: int) -> tuple[Tensor, Tensor]:
        if self._paired and m != n:
            raise ValueError(
                f"m={m} is invalid for a paired brenier problem with n={n}; "
                f"expected m=None or m=n, because y = grad psi(x)"
            )
        rng = np.random.default_rng(seed)
        x = self._draw_mixture(rng, n)
        source = x if self._paired else self._draw_mixture(rng, m)
        return x, self._gradient(source, self._psi)

    # ---- the construction ------------------------------------------------------

    def _check_points(self, x: object) -> None:
        if not isinstance(x, Tensor) or x.dim() != 2 or x.shape[1] != self._d:
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"x has shape {shape}; expected (n, {self._d})")

    def _draw_mixture(self, rng: np.random.Generator, size: int) -> Tensor:
        labels = rng.integers(self._components, size=size)
        noise = rng.standard_normal((size, self._d))
        return torch.from_numpy(self._means[labels] + COMPONENT_STD * noise)

    def _network(self, x: Tensor) -> Tensor:
        """Return the input-convex network f(x), shape (n,)."""
        w = {key: value.to(dtype=x.dtype, device=x.device) for key, value in self._weights.items()}
        first = F.softplus(F.linear(x, w["input_first"], w["bias_first"]))
        second = F.softplus(F.linear(first, w["hidden"]) + F.linear(x, w["input_second"], w["bias_second"]))
        return second @ w["output"]

    def _psi(self, x: Tensor) -> Tensor:
        linear = self._linear.to(dtype=x.dtype, device=x.device)
        network = self._network(x) - x @ linear
        return 0.5 * STRONG_CONVEXITY * x.square().sum(dim=1) + self._scale * network

    @staticmethod
    def _gradient(x: Tensor, function: Callable[[Tensor], Tensor]) -> Tensor:
        """Return the gradient of a row-wise function at each row of x, without a graph."""
        # inference_mode(False) lets this run inside a caller's torch.inference_mode block.
        with torch.inference_mode(False), torch.enable_grad():
            points = x.detach().clone().requires_grad_(True)
            (gradient,) = torch.autograd.grad(function(points).sum(), points)
        return gradient.detach()
