"""Dual critics: W_1 through Kantorovich-Rubinstein duality.

W_1(mu, nu) = max over 1-Lipschitz f of E_mu f(x) - E_nu f(y). A critic
network f approximates the maximiser. Each estimator call first runs
``n_critic`` optimiser steps on the detached samples (the inner loop), then
returns mean f(x) - mean f(y) with gradients flowing to x and y, so the
critic is a drop-in loss for a generator.

Two ways to keep f close to 1-Lipschitz:

- weight clipping (Arjovsky, Chintala and Bottou 2017, "Wasserstein GAN"):
  after every update each clipped parameter is clamped to [-c, c]. The
  critic is then K-Lipschitz for an unknown K, so its value is W_1 only up to
  an unknown, direction-dependent factor;
- a gradient penalty (Gulrajani et al. 2017, "Improved Training of
  Wasserstein GANs"): lambda E (||grad f(x_hat)|| - 1)^2 on points x_hat
  drawn uniformly on segments between real and generated examples.

Critics have no stopping criterion: ``last_solve.converged`` is None, and
the estimate improves with the total number of critic steps.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import Tensor, nn

from ..models import default_critic
from ..validation import check_positive
from .base import Capabilities, Estimator, SolveResult

__all__ = ["ClipCritic", "GPCritic", "gradient_penalty", "batch_norm_layers"]

logger = logging.getLogger(__name__)

_NORM_LAYERS = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm)


class _Critic(Estimator):
    """Shared inner loop of the dual critics; subclasses define the optimiser and the step."""

    capabilities = Capabilities(orders=(1,), weights=False, inner_loop=True, exact=False, images=True)

    def __init__(self, p: int, critic: nn.Module | None, n_critic: int, lr: float) -> None:
        if p != 1:
            raise ValueError(
                f"p={p!r} is not supported by estimator {self.name!r}: dual critics estimate "
                f"W_1 only (Kantorovich-Rubinstein duality). Use 'exact' or 'sinkhorn' for W_2"
            )
        super().__init__(p)
        check_positive("n_critic", n_critic, integer=True)
        check_positive("lr", lr)
        if critic is not None and not isinstance(critic, nn.Module):
            raise ValueError(f"critic must be a torch.nn.Module or None; got {type(critic).__name__}")
        self.n_critic = int(n_critic)
        self.lr = float(lr)
        self.user_critic = critic is not None
        self.critic: nn.Module | None = None
        self.optimizer: torch.optim.Optimizer | None = None
        self.total_steps = 0
        if critic is not None:
            self._check_critic(critic)
            self.critic = critic

    def config(self) -> dict[str, Any]:
        return {"p": self.p, "n_critic": self.n_critic, "lr": self.lr, "critic": "user" if self.user_critic else "default"}

    def _check_critic(self, critic: nn.Module) -> None:
        """Hook for subclasses to reject critics they cannot train correctly."""

    def _make_optimizer(self, parameters: Iterator[nn.Parameter]) -> torch.optim.Optimizer:
        raise NotImplementedError

    def _inner_step(self, critic: nn.Module, x: Tensor, y: Tensor) -> None:
        raise NotImplementedError

    def _prepare(self, x: Tensor) -> nn.Module:
        """Build the default critic on first call, move it to x's dtype and device, make the optimiser."""
        if self.critic is None:
            self.critic = default_critic(x.shape[1:])
        critic = self.critic
        first = next(critic.parameters(), None)
        if first is None:
            raise ValueError("critic has no parameters to train")
        if first.dtype != x.dtype or first.device != x.device:
            critic.to(device=x.device, dtype=x.dtype)
            self.optimizer = None
        if self.optimizer is None:
            self._check_output(critic, x)
            self.optimizer = self._make_optimizer(critic.parameters())
            self._after_build(critic)
        return critic

    @staticmethod
    def _check_output(critic: nn.Module, x: Tensor) -> None:
        """Raise unless the critic maps a batch of k samples to k scores, shape (k,) or (k, 1)."""
        probe = x[:2].detach()
        with torch.no_grad():
            scores = critic(probe)
        k = probe.shape[0]
        if not isinstance(scores, Tensor) or tuple(scores.shape) not in ((k,), (k, 1)):
            shape = tuple(scores.shape) if isinstance(scores, Tensor) else type(scores).__name__
            raise ValueError(
                f"critic maps a batch of shape {tuple(probe.shape)} to {shape}; "
                f"expected one score per sample, shape ({k},) or ({k}, 1)"
            )

    def _after_build(self, critic: nn.Module) -> None:
        """Hook run once the critic and its optimiser exist."""

    def _estimate(self, x: Tensor, y: Tensor, a: Tensor | None, b: Tensor | None) -> tuple[Tensor, SolveResult]:
        critic = self._prepare(x)
        critic.train()

        # Inner loop: the critic ascends mean f(x) - mean f(y) on detached samples.
        start = time.perf_counter()
        x_inner, y_inner = x.detach(), y.detach()
        with torch.enable_grad():
            for _ in range(self.n_critic):
                self._inner_step(critic, x_inner, y_inner)
        seconds = time.perf_counter() - start
        self.total_steps += self.n_critic

        # Outer value: gradients reach x and y, not the critic's parameters.
        frozen = [param for param in critic.parameters() if param.requires_grad]
        for param in frozen:
            param.requires_grad_(False)
        try:
            value = critic(x).mean() - critic(y).mean()
        finally:
            for param in frozen:
                param.requires_grad_(True)
        if same_measure(x, y):
            # W_1 is exactly 0 and 0 is a subgradient at its minimum, while the
            # critic's own gradient would push x away from y.
            value = value * 0.0
        result = SolveResult(value=float(value.detach()), iterations=self.n_critic, converged=None, seconds=seconds)
        return value, result


def same_measure(x: Tensor, y: Tensor) -> bool:
    """Return True if x and y hold the same points with the same multiplicities."""
    if x.shape != y.shape:
        return False
    x_flat, y_flat = x.detach().flatten(start_dim=1), y.detach().flatten(start_dim=1)
    # Equal sorted columns are necessary; the row-wise comparison runs only then.
    if not torch.equal(x_flat.sort(dim=0).values, y_flat.sort(dim=0).values):
        return False
    x_rows, x_counts = torch.unique(x_flat, dim=0, return_counts=True)
    y_rows, y_counts = torch.unique(y_flat, dim=0, return_counts=True)
    return torch.equal(x_rows, y_rows) and torch.equal(x_counts, y_counts)


def default_clip_filter(name: str, module: nn.Module) -> bool:
    """Clip every parameter except the affine parameters of normalisation layers.

    Clamping a normalisation scale initialised at 1 to [-c, c] would shrink
    every activation after it by 1 / c, so those scales are left free.
    """
    return not isinstance(module, _NORM_LAYERS)


class ClipCritic(_Critic):
    """WGAN critic with weight clipping (Arjovsky, Chintala and Bottou 2017).

    Args:
        p: must be 1.
        critic: a network mapping a batch to (n, 1) scores; ``None`` builds the
            default on the first call (an MLP for (n, d), a conv net for images).
        n_critic: critic updates per call (inner steps).
        lr: RMSprop learning rate (5e-5 in the paper).
        clip_value: c; clipped parameters are clamped to [-c, c] after every update.
        clip_filter: ``(module_name, module) -> bool`` selecting the modules whose
            parameters are clipped; the default clips all but normalisation layers.

    The value is W_1 only up to an unknown factor that depends on c and on
    the direction between the samples (``capabilities.scale_known`` is False):
    between Diracs at 0 and t, a linear critic gives c ||t||_1, not ||t||.
    """

    name = "critic-clip"
    capabilities = Capabilities(
        orders=(1,), weights=False, inner_loop=True, exact=False, scale_known=False, images=True
    )

    def __init__(
        self,
        p: int = 1,
        critic: nn.Module | None = None,
        n_critic: int = 5,
        lr: float = 5e-5,
        clip_value: float = 0.01,
        clip_filter: Callable[[str, nn.Module], bool] | None = None,
    ) -> None:
        super().__init__(p, critic, n_critic, lr)
        check_positive("clip_value", clip_value)
        if clip_filter is not None and not callable(clip_filter):
            raise ValueError(f"clip_filter must be callable (module_name, module) -> bool; got {clip_filter!r}")
        self.clip_value = float(clip_value)
        self.clip_filter = clip_filter or default_clip_filter
        self._clipped: list[nn.Parameter] = []
        self.clipped_parameter_names: list[str] = []

    def config(self) -> dict[str, Any]:
        return {**super().config(), "clip_value": self.clip_value}

    def _make_optimizer(self, parameters: Iterator[nn.Parameter]) -> torch.optim.Optimizer:
        return torch.optim.RMSprop(parameters, lr=self.lr)

    def _after_build(self, critic: nn.Module) -> None:
        self._clipped, self.clipped_parameter_names = [], []
        for module_name, module in critic.named_modules():
            if not self.clip_filter(module_name, module):
                continue
            for param_name, param in module.named_parameters(recurse=False):
                self._clipped.append(param)
                self.clipped_parameter_names.append(f"{module_name}.{param_name}".lstrip("."))
        self._clip()

    def _clip(self) -> None:
        with torch.no_grad():
            for param in self._clipped:
                param.clamp_(-self.clip_value, self.clip_value)

    def _inner_step(self, critic: nn.Module, x: Tensor, y: Tensor) -> None:
        assert self.optimizer is not None
        self.optimizer.zero_grad(set_to_none=True)
        loss = critic(y).mean() - critic(x).mean()
        loss.backward()
        self.optimizer.step()
        # Clip after the update, so the critic that the generator loss uses is within bounds.
        self._clip()


def batch_norm_layers(module: nn.Module) -> list[str]:
    """Return the names of layers that normalise with batch statistics."""
    return [
        f"'{name or '<root>'}' ({type(layer).__name__})"
        for name, layer in module.named_modules()
        if isinstance(layer, nn.modules.batchnorm._BatchNorm)
    ]


def gradient_penalty(
    critic: nn.Module, real: Tensor, fake: Tensor, gp_weight: float = 10.0
) -> Tensor:
    """Return gp_weight * mean_i (||grad f(x_hat_i)||_2 - 1)^2 (Gulrajani et al. 2017).

    x_hat_i = fake_i + u_i (real_i - fake_i) with one u_i ~ U[0, 1] per example,
    broadcast over all feature axes, and the norm is taken over all of them
    (for images, over channels, height and width together). The norm has a
    zero subgradient at 0, so a critic whose input gradient vanishes gets a
    finite parameter gradient.

    Args:
        critic: network mapping (k, *shape) to (k, 1) or (k,).
        real, fake: batches of equal shape (k, *shape).
        gp_weight: the penalty weight lambda.
    """
    if real.shape != fake.shape:
        raise ValueError(
            f"real has shape {tuple(real.shape)} and fake has shape {tuple(fake.shape)}; "
            f"expected equal shapes"
        )
    factor = torch.rand((real.shape[0],) + (1,) * (real.dim() - 1), dtype=real.dtype, device=real.device)
    x_hat = (fake + factor * (real - fake)).requires_grad_(True)
    scores = critic(x_hat)
    (grad,) = torch.autograd.grad(scores.sum(), x_hat, create_graph=True)
    norms = torch.linalg.vector_norm(grad.flatten(start_dim=1), dim=1)
    return gp_weight * (norms - 1.0).pow(2).mean()


class GPCritic(_Critic):
    """WGAN-GP critic with a two-sided gradient penalty (Gulrajani et al. 2017).

    Args:
        p: must be 1.
        critic: a network mapping a batch to (n, 1) scores; ``None`` builds the
            default on the first call. Layers with batch statistics are rejected.
        n_critic: critic updates per call (inner steps).
        lr: Adam learning rate.
        betas: Adam betas; (0, 0.9) as in the paper.
        gp_weight: penalty weight lambda (10 in the paper).
        allow_batch_norm: accept a critic with batch normalisation, with a warning.

    When n != m, the penalty pairs the first min(n, m) examples of random
    permutations of x and y.
    """

    name = "critic-gp"

    def __init__(
        self,
        p: int = 1,
        critic: nn.Module | None = None,
        n_critic: int = 5,
        lr: float = 1e-4,
        betas: tuple[float, float] = (0.0, 0.9),
        gp_weight: float = 10.0,
        allow_batch_norm: bool = False,
    ) -> None:
        self.allow_batch_norm = bool(allow_batch_norm)
        super().__init__(p, critic, n_critic, lr)
        if (
            not isinstance(betas, (tuple, list))
            or len(betas) != 2
            or not all(isinstance(v, (int, float)) and 0 <= v < 1 for v in betas)
        ):
            raise ValueError(f"betas={betas!r} is invalid; expected two numbers in [0, 1)")
        if isinstance(gp_weight, bool) or not isinstance(gp_weight, (int, float)) or gp_weight < 0:
            raise ValueError(f"gp_weight={gp_weight!r} is invalid; expected a non-negative number")
        self.betas = (float(betas[0]), float(betas[1]))
        self.gp_weight = float(gp_weight)

    def config(self) -> dict[str, Any]:
        return {**super().config(), "betas": list(self.betas), "gp_weight": self.gp_weight}

    def _check_critic(self, critic: nn.Module) -> None:
        layers = batch_norm_layers(critic)
        if not layers:
            return
        if not self.allow_batch_norm:
            raise ValueError(
                f"critic has batch normalisation layer(s) {', '.join(layers)}: batch statistics "
                f"couple the examples, so the per-example gradient penalty is wrong. "
                f"Use nn.LayerNorm instead, or pass allow_batch_norm=True to keep them"
            )
        warnings.warn(
            f"critic-gp: batch normalisation layer(s) {', '.join(layers)} make the gradient "
            f"penalty couple examples; nn.LayerNorm avoids this",
            UserWarning,
            stacklevel=4,
        )

    def _make_optimizer(self, parameters: Iterator[nn.Parameter]) -> torch.optim.Optimizer:
        return torch.optim.Adam(parameters, lr=self.lr, betas=self.betas)

    def _inner_step(self, critic: nn.Module, x: Tensor, y: Tensor) -> None:
        assert self.optimizer is not None
        self.optimizer.zero_grad(set_to_none=True)
        real, fake = y, x
        if real.shape[0] != fake.shape[0]:
            k = min(real.shape[0], fake.shape[0])
            real = real[torch.randperm(real.shape[0], device=real.device)[:k]]
            fake = fake[torch.randperm(fake.shape[0], device=fake.device)[:k]]
        loss = critic(y).mean() - critic(x).mean() + gradient_penalty(critic, real, fake, self.gp_weight)
        loss.backward()
        self.optimizer.step()
