"""Generator and critic networks.

The defaults follow the toy and small-image settings of WGAN-GP (Gulrajani et
al. 2017, "Improved Training of Wasserstein GANs"): ReLU MLPs for flat data,
a small strided conv net for images, and no batch normalisation in critics,
because batch statistics couple the examples that a gradient penalty treats
one at a time.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

__all__ = ["Generator", "conv_critic", "default_critic", "mlp", "mlp_critic"]


def mlp(in_features: int, out_features: int, hidden: int, depth: int) -> nn.Sequential:
    """Return a ReLU MLP with ``depth`` hidden layers of width ``hidden``."""
    layers: list[nn.Module] = []
    width = in_features
    for _ in range(depth):
        layers += [nn.Linear(width, hidden), nn.ReLU()]
        width = hidden
    layers.append(nn.Linear(width, out_features))
    return nn.Sequential(*layers)


def mlp_critic(in_features: int, hidden: int = 128, depth: int = 3) -> nn.Module:
    """Return a critic for flat inputs (n, d) -> (n, 1)."""
    return mlp(in_features, 1, hidden, depth)


def conv_critic(in_shape: Sequence[int], channels: int = 32) -> nn.Module:
    """Return a critic for images (n, C, H, W) -> (n, 1).

    Two stride-2 convolutions halve H and W twice (rounding up), then a linear
    layer reads the features.
    """
    c, h, w = (int(s) for s in in_shape)
    h_out, w_out = math.ceil(math.ceil(h / 2) / 2), math.ceil(math.ceil(w / 2) / 2)
    return nn.Sequential(
        nn.Conv2d(c, channels, kernel_size=3, stride=2, padding=1),
        nn.LeakyReLU(0.2),
        nn.Conv2d(channels, 2 * channels, kernel_size=3, stride=2, padding=1),
        nn.LeakyReLU(0.2),
        nn.Flatten(),
        nn.Linear(2 * channels * h_out * w_out, 1),
    )


def default_critic(sample_shape: Sequence[int]) -> nn.Module:
    """Return the default critic for one sample's shape: (d,) or (C, H, W)."""
    if len(sample_shape) == 1:
        return mlp_critic(int(sample_shape[0]))
    if len(sample_shape) == 3:
        return conv_critic(sample_shape)
    raise ValueError(
        f"sample shape {tuple(sample_shape)} is not supported by the default critic; "
        f"expected (d,) or (C, H, W), or pass critic=YOUR_MODULE"
    )


class Generator(nn.Module):
    """An MLP generator from ``latent_dim`` Gaussian noise to samples of ``out_shape``.

    With ``tanh=True`` the output lies in [-1, 1], the range of image data.
    """

    def __init__(
        self,
        latent_dim: int,
        out_shape: Sequence[int],
        hidden: int = 128,
        depth: int = 3,
        tanh: bool = False,
    ) -> None:
        super().__init__()
        self.latent_dim = int(latent_dim)
        self.out_shape = tuple(int(s) for s in out_shape)
        self.net = mlp(self.latent_dim, math.prod(self.out_shape), hidden, depth)
        self.tanh = tanh

    def forward(self, z: Tensor) -> Tensor:
        out = self.net(z)
        if self.tanh:
            out = torch.tanh(out)
        return out.view(z.shape[0], *self.out_shape)

    def sample_noise(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """Draw (n, latent_dim) standard Gaussian noise on this module's device."""
        weight = next(self.parameters())
        return torch.randn(n, self.latent_dim, generator=generator, dtype=weight.dtype).to(weight.device)
