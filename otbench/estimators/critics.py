"""Dual critics: W_1 through Kantorovich-Rubinstein duality.

W_1(mu, nu) = max over 1-Lipschitz f of E_mu f(x) - E_nu f(y). A critic
network f approximates the maximiser. Each estimator call first runs
``n_critic`` optimiser steps on the detached samples (the inner loop), then
returns mean f(x) - mean f(y) with gradients flowing to x and y, so the
critic is a drop-in loss for a generator.

Four ways to keep f close to 1-Lipschitz:

- weight clipping (Arjovsky, Chintala and Bottou 2017, "Wasserstein GAN"):
  after every update each clipped parameter is clamped to [-c, c]. The
  critic is then K-Lipschitz for an unknown K, so its value is W_1 only up to
  an unknown, direction-dependent factor;
- a gradient penalty (Gulrajani et al. 2017, "Improved Training of
  Wasserstein GANs"): lambda E (||grad f(x_hat)|| - 1)^2 on points x_hat
  drawn uniformly on segments between real and generated examples;
- a one-sided penalty (Petzka, Fischer and Lukovnikov 2018, "On the
  regularization of Wasserstein GANs"): lambda E max(0, ||grad f(x_hat)|| - 1)^2
  on the same points, which penalises only gradients steeper than 1;
- spectral normalisation (Miyato, Kataoka, Koyama and Yoshida 2018, "Spectral
  Normalization for Generative Adversarial Networks"): every weight matrix is
  divided by its largest singular value, so a network of such layers and
  1-Lipschitz activations is at most 1-Lipschitz.

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
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import spectral_norm

from ..models import default_critic
from ..validation import check_positive
from .base import Capabilities, Estimator, SolveResult

__all__ = [
    "ClipCritic",
    "GPCritic",
    "LPCritic",
    "SNCritic",
    "batch_norm_layers",
    "gradient_penalty",
    "spectral_normalize",
]

logger = logging.getLogger(__name__)

_NORM_LAYERS = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm)


class _Critic(Estimator):
    """Shared inner loop of the dual critics; subclasses define the optimiser and the step."""

    capabilities = Capabilities(orders=(1,), weights=False, inner_loop=True, exact=False, images=True)

    def __init__(self, p: int, critic: nn.Module | None, n_critic: int, lr: float) -> None:
        if self.capabilities.orders == (1,) and p != 1:
            raise ValueError(
                f"p={p!r} is not supported by estimator {self.name!r}: dual critics estimate "
                f"W_1 only (Kantorovich-Rubinstein duality). Use 'exact', 'sinkhorn' or 'critic-ctransform' for W_2"
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

    def _inner_loop(self, critic: nn.Module, x: Tensor, y: Tensor) -> None:
        """Run ``n_critic`` inner steps on detached samples."""
        for _ in range(self.n_critic):
            self._inner_step(critic, x, y)

    def _outer_value(self, critic: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        """Return the estimate from the trained critic, whose parameters are frozen during this call."""
        return critic(x).mean() - critic(y).mean()

    def _estimate(self, x: Tensor, y: Tensor, a: Tensor | None, b: Tensor | None) -> tuple[Tensor, SolveResult]:
        critic = self._prepare(x)
        critic.train()

        # Inner loop: the critic ascends mean f(x) - mean f(y) on detached samples.
        start = time.perf_counter()
        x_inner, y_inner = x.detach(), y.detach()
        with torch.enable_grad():
            self._inner_loop(critic, x_inner, y_inner)
        seconds = time.perf_counter() - start
        self.total_steps += self.n_critic

        # Outer value: gradients reach x and y, not the critic's parameters.
        frozen = [param for param in critic.parameters() if param.requires_grad]
        for param in frozen:
            param.requires_grad_(False)
        try:
            value = self._outer_value(critic, x, y)
        finally:
            for param in frozen:
                param.requires_grad_(True)
        if same_measure(x, y):
            # W_p is exactly 0 and 0 is a subgradient at its minimum, while the
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
    critic: nn.Module,
    real: Tensor,
    fake: Tensor,
    gp_weight: float = 10.0,
    one_sided: bool = False,
) -> Tensor:
    """Return gp_weight * mean_i (||grad f(x_hat_i)||_2 - 1)^2 (Gulrajani et al. 2017).

    x_hat_i = fake_i + u_i (real_i - fake_i) with one u_i ~ U[0, 1] per example,
    broadcast over all feature axes, and the norm is taken over all of them
    (for images, over channels, height and width together). The norm has a
    zero subgradient at 0, so a critic whose input gradient vanishes gets a
    finite parameter gradient.

    With ``one_sided`` the penalty is gp_weight * mean_i max(0, ||grad f(x_hat_i)||_2 - 1)^2
    (Petzka, Fischer and Lukovnikov 2018), which is 0 wherever the critic is
    no steeper than 1.

    Args:
        critic: network mapping (k, *shape) to (k, 1) or (k,).
        real, fake: batches of equal shape (k, *shape).
        gp_weight: the penalty weight lambda.
        one_sided: penalise only gradient norms above 1.
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
    excess = norms - 1.0
    if one_sided:
        excess = excess.clamp_min(0.0)
    return gp_weight * excess.pow(2).mean()


def check_betas(betas: object) -> tuple[float, float]:
    """Return Adam's ``betas`` as two floats, or raise ``ValueError`` unless both lie in [0, 1)."""
    if (
        not isinstance(betas, (tuple, list))
        or len(betas) != 2
        or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v < 1 for v in betas)
    ):
        raise ValueError(f"betas={betas!r} is invalid; expected two numbers in [0, 1)")
    return (float(betas[0]), float(betas[1]))


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
    one_sided = False

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
        self.betas = check_betas(betas)
        if isinstance(gp_weight, bool) or not isinstance(gp_weight, (int, float)) or gp_weight < 0:
            raise ValueError(f"gp_weight={gp_weight!r} is invalid; expected a non-negative number")
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
            f"{self.name}: batch normalisation layer(s) {', '.join(layers)} make the gradient "
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
        penalty = gradient_penalty(critic, real, fake, self.gp_weight, one_sided=self.one_sided)
        loss = critic(y).mean() - critic(x).mean() + penalty
        loss.backward()
        self.optimizer.step()


class LPCritic(GPCritic):
    """WGAN-LP critic with a one-sided gradient penalty (Petzka, Fischer and Lukovnikov 2018).

    The penalty lambda E max(0, ||grad f(x_hat)|| - 1)^2 acts on the same
    interpolates as critic-gp (one uniform factor per example, the norm over
    all feature axes). It enforces only the 1-Lipschitz constraint
    ||grad f|| <= 1. The two-sided penalty also pushes the gradient norm up
    to 1 in regions where the optimal critic may be flatter. The penalty is
    soft, so the critic can still be slightly steeper than 1, and the value
    can exceed the batch's W_1.

    Args:
        p: must be 1.
        critic: a network mapping a batch to (n, 1) scores; ``None`` builds the
            default on the first call. Layers with batch statistics are rejected.
        n_critic: critic updates per call (inner steps).
        lr: Adam learning rate.
        betas: Adam betas; (0, 0.9) as for critic-gp.
        gp_weight: penalty weight lambda.
        allow_batch_norm: accept a critic with batch normalisation, with a warning.

    When n != m, the penalty pairs the first min(n, m) examples of random
    permutations of x and y.
    """

    name = "critic-lp"
    one_sided = True


# Layers whose weight spectral normalisation divides by its largest singular value.
_NORMALIZED_LAYERS = (nn.Linear, nn.modules.conv._ConvNd)


def _walk_layers(module: nn.Module, prefix: str = "") -> Iterator[tuple[str, nn.Module]]:
    """Yield (name, layer) for ``module`` and its descendants, without entering Linear or Conv layers.

    The parametrisation containers registered inside a normalised layer hold
    the raw weight as a parameter, and must not be taken for layers of the critic.
    """
    yield prefix, module
    if isinstance(module, _NORMALIZED_LAYERS):
        return
    for name, child in module.named_children():
        yield from _walk_layers(child, f"{prefix}.{name}" if prefix else name)


def _has_spectral_norm(layer: nn.Module) -> bool:
    if not parametrize.is_parametrized(layer, "weight"):
        return False
    parametrizations = layer.parametrizations["weight"]  # type: ignore[index]
    # torch exports no public class for this parametrisation, so it is matched by name.
    return any(type(item).__name__ == "_SpectralNorm" for item in parametrizations)


def spectral_normalize(module: nn.Module, n_power_iterations: int = 1) -> list[str]:
    """Register spectral normalisation on the weight of every Linear and Conv layer, in place.

    Uses ``torch.nn.utils.parametrizations.spectral_norm``, which estimates the
    largest singular value by power iteration, ``n_power_iterations`` steps each
    time the weight is read in training mode. Layers whose weight already has
    a spectral normalisation are left as they are.

    Returns:
        The names of the normalised layers ("<root>" for ``module`` itself).
    """
    layers = [(name, layer) for name, layer in _walk_layers(module) if isinstance(layer, _NORMALIZED_LAYERS)]
    for _, layer in layers:
        if not _has_spectral_norm(layer):
            spectral_norm(layer, n_power_iterations=n_power_iterations)
    return [name or "<root>" for name, _ in layers]


def unconstrained_layers(module: nn.Module) -> list[str]:
    """Return the layers whose Lipschitz constant spectral normalisation does not bound.

    These are normalisation layers (with or without parameters) and every layer
    other than Linear and Conv that has parameters of its own. Parameter-free
    layers (activations, Flatten, pooling) are not listed: whether they are
    1-Lipschitz is not checked.
    """
    return [
        f"'{name or '<root>'}' ({type(layer).__name__})"
        for name, layer in _walk_layers(module)
        if not isinstance(layer, _NORMALIZED_LAYERS)
        and (isinstance(layer, _NORM_LAYERS) or next(layer.parameters(recurse=False), None) is not None)
    ]


class SNCritic(_Critic):
    """Critic with spectral normalisation and no penalty (Miyato, Kataoka, Koyama and Yoshida 2018).

    Every Linear and Conv layer's weight is divided by its largest singular
    value, estimated by power iteration. With 1-Lipschitz activations (ReLU,
    LeakyReLU with slope <= 1, tanh) the critic is then at most 1-Lipschitz, up
    to the error of the power iteration, which underestimates each largest
    singular value slightly (by under 1e-3 per layer after a few hundred
    steps). So mean f(x) - mean f(y) is, up to that error, a lower bound on the
    W_1 of the two batches.
    The product of layer norms is a loose bound, so in practice the critic is
    often flatter than 1 and the value stays well below W_1.

    The normalisation is registered when the critic is built: on the default
    critic at the first call, or on a user's ``critic`` in the constructor,
    which modifies that module in place (``torch.nn.utils.parametrize``
    replaces each ``weight`` by a parametrisation). Layers that already carry a
    spectral normalisation are kept as they are.

    Power iteration updates its singular-vector estimates only in training
    mode, at each forward pass. Each inner step therefore runs one forward
    pass on x and y together, so both are scored with the same weights. After
    the inner loop, one more power iteration runs on the final weights, and
    the outer value is computed in eval mode, where f(x) and f(y) use the
    same normalisation and the estimates are left unchanged. Any other
    train/eval difference of a user's critic (dropout) also applies.

    NOTE: for a Conv layer the singular value is that of the kernel reshaped
    to (out_channels, in_channels * kernel size), as in the paper and in
    torch. The convolution's operator norm can be larger, by up to a factor
    of 2 for a 3x3 kernel with stride 2 (each input pixel falls in at most
    four windows), so the default image critic is only bounded by 4.

    Args:
        p: must be 1.
        critic: a network mapping a batch to (n, 1) scores; ``None`` builds the
            default on the first call. Normalisation layers and layers with
            parameters other than Linear and Conv are rejected.
        n_critic: critic updates per call (inner steps).
        lr: Adam learning rate.
        betas: Adam betas. The defaults, lr 1e-4 and (0, 0.9), are the WGAN-GP
            settings that critic-gp uses, so the two differ only in how they
            bound the critic.
        n_power_iterations: power-iteration steps per forward pass in training mode.
        allow_unconstrained_layers: accept the layers that are otherwise
            rejected, with a warning; the value is then no longer a lower bound.
    """

    name = "critic-sn"
    capabilities = Capabilities(
        orders=(1,), weights=False, inner_loop=True, exact=False, scale_known=True, images=True
    )

    def __init__(
        self,
        p: int = 1,
        critic: nn.Module | None = None,
        n_critic: int = 5,
        lr: float = 1e-4,
        betas: tuple[float, float] = (0.0, 0.9),
        n_power_iterations: int = 1,
        allow_unconstrained_layers: bool = False,
    ) -> None:
        self.allow_unconstrained_layers = bool(allow_unconstrained_layers)
        super().__init__(p, critic, n_critic, lr)
        self.betas = check_betas(betas)
        check_positive("n_power_iterations", n_power_iterations, integer=True)
        self.n_power_iterations = int(n_power_iterations)
        self.normalized_layer_names: list[str] = []
        if self.critic is not None:
            self.normalized_layer_names = self._normalize(self.critic)

    def config(self) -> dict[str, Any]:
        return {**super().config(), "betas": list(self.betas), "n_power_iterations": self.n_power_iterations}

    def _check_critic(self, critic: nn.Module) -> None:
        layers = unconstrained_layers(critic)
        if not layers:
            return
        if not self.allow_unconstrained_layers:
            raise ValueError(
                f"critic has layer(s) {', '.join(layers)} that spectral normalisation does not bound, "
                f"so the critic may be steeper than 1-Lipschitz and the value is no lower bound on W_1. "
                f"Use only Linear and Conv layers with 1-Lipschitz activations, "
                f"or pass allow_unconstrained_layers=True to keep them"
            )
        warnings.warn(
            f"{self.name}: layer(s) {', '.join(layers)} are not bounded by spectral normalisation; "
            f"the value is no lower bound on W_1",
            UserWarning,
            stacklevel=4,
        )

    def _normalize(self, critic: nn.Module) -> list[str]:
        names = spectral_normalize(critic, self.n_power_iterations)
        if not names:
            raise ValueError("critic has no Linear or Conv layer, so spectral normalisation bounds nothing")
        logger.debug("%s: spectral normalisation on layers %s", self.name, names)
        return names

    def _prepare(self, x: Tensor) -> nn.Module:
        if self.critic is None:
            critic = default_critic(x.shape[1:])
            self.normalized_layer_names = self._normalize(critic)
            self.critic = critic
        return super()._prepare(x)

    def _make_optimizer(self, parameters: Iterator[nn.Parameter]) -> torch.optim.Optimizer:
        return torch.optim.Adam(parameters, lr=self.lr, betas=self.betas)

    def _inner_step(self, critic: nn.Module, x: Tensor, y: Tensor) -> None:
        assert self.optimizer is not None
        self.optimizer.zero_grad(set_to_none=True)
        # One forward pass, so one power iteration and one normalisation for both batches.
        scores = critic(torch.cat([x, y])).reshape(-1)
        loss = scores[x.shape[0] :].mean() - scores[: x.shape[0]].mean()
        loss.backward()
        self.optimizer.step()

    def _outer_value(self, critic: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        # Reading a weight in training mode runs the power iteration on the final weights.
        with torch.no_grad():
            for layer in critic.modules():
                if isinstance(layer, _NORMALIZED_LAYERS) and _has_spectral_norm(layer):
                    _ = layer.weight
        critic.eval()
        try:
            return super()._outer_value(critic, x, y)
        finally:
            critic.train()
