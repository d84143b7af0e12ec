"""Checks on user input, shared by every estimator.

Each check raises ``ValueError`` naming the argument, the value received and
what is expected, before any solver runs.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import Tensor

__all__ = [
    "check_order",
    "check_positive",
    "check_samples",
    "check_weights",
    "check_pair",
]

# Two weight vectors summing to 1 up to this relative error are taken as
# probability weights. It is loose enough for float32 sums of 10^6 terms.
MASS_RTOL = 1e-4


def check_order(p: object, supported: Iterable[int], estimator: str) -> int:
    """Return ``p`` as an int if ``estimator`` supports it, else raise."""
    supported = tuple(supported)
    if isinstance(p, bool) or not isinstance(p, (int, float)) or p not in supported:
        raise ValueError(
            f"p={p!r} is not supported by estimator {estimator!r}; "
            f"expected one of {list(supported)}"
        )
    return int(p)


def check_positive(name: str, value: object, *, integer: bool = False) -> None:
    """Raise unless ``value`` is a finite positive number (an int if ``integer``)."""
    kinds = (int,) if integer else (int, float)
    ok = isinstance(value, kinds) and not isinstance(value, bool)
    if ok and not (math.isfinite(value) and value > 0):  # type: ignore[arg-type, operator]
        ok = False
    if not ok:
        kind = "a positive integer" if integer else "a finite positive number"
        raise ValueError(f"{name}={value!r} is invalid; expected {kind}")


def check_samples(name: str, x: object, *, keep_image: bool = False) -> Tensor:
    """Validate a batch of samples and return it as a 2-D (or image) tensor.

    Args:
        name: argument name used in messages (``"x"`` or ``"y"``).
        x: a float32 or float64 tensor of shape (n, d), or (n, C, H, W) for images.
            A 1-D tensor is rejected: it is ambiguous between n samples in R^1
            and one sample in R^n.
        keep_image: return image batches unflattened.

    Returns:
        The tensor, flattened to (n, d) unless ``keep_image``.

    Raises:
        ValueError: not a float32 or float64 tensor, wrong number of dimensions,
            empty, or containing NaN or inf.
    """
    if not isinstance(x, Tensor):
        raise ValueError(
            f"{name} must be a torch.Tensor of shape (n, d); got {type(x).__name__}"
        )
    if x.dtype not in (torch.float32, torch.float64):
        raise ValueError(
            f"{name} has dtype {x.dtype}; expected torch.float32 or torch.float64 "
            f"(half precision is too coarse for transport costs). Convert with {name}.float()"
        )
    if x.device.type == "meta":
        raise ValueError(f"{name} is on the meta device, which stores no data; expected a CPU or CUDA tensor")
    if x.dim() == 1:
        raise ValueError(
            f"{name} has shape {tuple(x.shape)}, a bare 1-D tensor; expected (n, d). "
            f"For n samples in R^1 use {name}.reshape(-1, 1); "
            f"for one sample in R^n use {name}.reshape(1, -1)"
        )
    if x.dim() not in (2, 4):
        raise ValueError(
            f"{name} has shape {tuple(x.shape)}; expected (n, d) samples "
            f"or (n, C, H, W) images"
        )
    if x.shape[0] == 0:
        raise ValueError(f"{name} is empty: shape {tuple(x.shape)} has 0 samples")
    if x.numel() == 0:
        raise ValueError(f"{name} has shape {tuple(x.shape)}: samples with 0 features")
    if not bool(torch.isfinite(x).all()):
        bad = int((~torch.isfinite(x)).sum())
        raise ValueError(f"{name} contains {bad} NaN or inf entries; expected finite values")
    if x.dim() == 4 and not keep_image:
        x = x.flatten(start_dim=1)
    return x


def check_weights(name: str, w: Tensor | None, n: int, samples: str, like: Tensor) -> Tensor | None:
    """Validate probability weights for ``n`` samples.

    Returns ``None`` for uniform weights, or ``w`` cast to the dtype and device
    of ``like``. Weights must be finite, non-negative and sum to 1.
    """
    if w is None:
        return None
    if not isinstance(w, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor of shape ({n},); got {type(w).__name__}")
    if w.dim() != 1:
        raise ValueError(f"{name} has shape {tuple(w.shape)}; expected a 1-D tensor of shape ({n},)")
    if w.shape[0] != n:
        raise ValueError(
            f"{name} has length {w.shape[0]} but {samples} has {n} samples; "
            f"expected one weight per sample"
        )
    if not bool(torch.isfinite(w).all()):
        raise ValueError(f"{name} contains NaN or inf; expected finite non-negative weights")
    if bool((w < 0).any()):
        raise ValueError(
            f"{name} has negative entries (min {float(w.detach().min()):.6g}); expected non-negative weights"
        )
    total = float(w.detach().sum())
    if abs(total - 1.0) > MASS_RTOL:
        raise ValueError(
            f"{name} sums to {total:.6g}; expected probability weights summing to 1 "
            f"(both measures need equal mass). Divide by {name}.sum()"
        )
    return w.to(dtype=like.dtype, device=like.device)


def check_pair(
    x: object,
    y: object,
    a: Tensor | None = None,
    b: Tensor | None = None,
    *,
    keep_image: bool = False,
) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]:
    """Validate samples ``x`` (n, d), ``y`` (m, d) and optional weights.

    Image batches (n, C, H, W) are flattened unless ``keep_image``. ``y`` is
    cast to the dtype and device of ``x``.
    """
    x = check_samples("x", x, keep_image=keep_image)
    y = check_samples("y", y, keep_image=keep_image)
    if x.shape[1:] != y.shape[1:]:
        raise ValueError(
            f"x has shape {tuple(x.shape)} and y has shape {tuple(y.shape)}; "
            f"expected the same feature shape {tuple(x.shape[1:])} for both"
        )
    if y.dtype != x.dtype or y.device != x.device:
        y = y.to(dtype=x.dtype, device=x.device)
    a = check_weights("a", a, x.shape[0], "x", x)
    b = check_weights("b", b, y.shape[0], "y", x)
    return x, y, a, b
