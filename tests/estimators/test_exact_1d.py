"""The exact estimator on one feature: sorting agrees with the LP and scales to large n."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
import torch

import otbench
from otbench.estimators.exact import ExactLP


def line_pair(n: int, m: int, seed: int, dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, generator=generator, dtype=dtype)
    y = 0.7 * torch.randn(m, 1, generator=generator, dtype=dtype) + 0.4
    return x, y


def random_weights(n: int, seed: int) -> torch.Tensor:
    weights = torch.from_numpy(np.random.default_rng(seed).random(n) + 0.05)
    return weights / weights.sum()


def on_plane(x: torch.Tensor) -> torch.Tensor:
    """Embed points of a line in R^2, where the exact estimator solves the LP."""
    return torch.cat([x, torch.zeros_like(x)], dim=1)


@pytest.mark.parametrize("p", [1, 2])
@pytest.mark.parametrize("n, m", [(30, 30), (30, 17)])
@pytest.mark.parametrize("weighted", [False, True])
def test_agrees_with_lp(p: int, n: int, m: int, weighted: bool) -> None:
    x, y = line_pair(n, m, seed=n + m)
    a = random_weights(n, seed=1).requires_grad_(True) if weighted else None
    b = random_weights(m, seed=2) if weighted else None
    sorted_x = x.clone().requires_grad_(True)
    lp_x = x.clone().requires_grad_(True)
    est = ExactLP(p=p)

    sorted_value = est(sorted_x, y, a, b)
    sorted_grads = torch.autograd.grad(sorted_value, [sorted_x] + ([a] if weighted else []))
    lp_value = est(on_plane(lp_x), on_plane(y), a, b)
    lp_grads = torch.autograd.grad(lp_value, [lp_x] + ([a] if weighted else []))

    assert float(sorted_value.detach()) == pytest.approx(float(lp_value.detach()), rel=1e-10)
    assert torch.allclose(sorted_grads[0], lp_grads[0], rtol=0.0, atol=1e-10)
    if weighted:
        # A weight gradient is defined up to a constant shift, because the weights sum to 1.
        sorted_centered = sorted_grads[1] - sorted_grads[1].mean()
        lp_centered = lp_grads[1] - lp_grads[1].mean()
        assert torch.allclose(sorted_centered, lp_centered, rtol=0.0, atol=1e-10)


@pytest.mark.parametrize("p", [1, 2])
def test_zero_weights_agree_with_lp(p: int) -> None:
    x, y = line_pair(6, 5, seed=3)
    a = torch.tensor([0.0, 0.3, 0.0, 0.2, 0.5, 0.0], dtype=torch.float64)
    b = torch.tensor([0.1, 0.0, 0.4, 0.5, 0.0], dtype=torch.float64)
    est = ExactLP(p=p)
    assert float(est(x, y, a, b)) == pytest.approx(float(est(on_plane(x), on_plane(y), a, b)), rel=1e-10)


@pytest.mark.parametrize("p", [1, 2])
def test_gradient_finite_differences(p: int) -> None:
    x, y = line_pair(10, 12, seed=4)
    x.requires_grad_(True)
    est = ExactLP(p=p)
    value = est(x, y)
    assert value.grad_fn is not None
    (grad,) = torch.autograd.grad(value, x)
    numeric = torch.zeros_like(x)
    h = 1e-6
    for i in range(10):
        up, down = x.detach().clone(), x.detach().clone()
        up[i, 0] += h
        down[i, 0] -= h
        numeric[i, 0] = (est(up, y) - est(down, y)) / (2 * h)
    assert torch.allclose(grad, numeric, rtol=1e-6, atol=1e-9)


def test_large_n_fast() -> None:
    x, y = line_pair(200_000, 200_000, seed=5)
    est = ExactLP(p=2)
    elapsed = math.inf
    for _ in range(2):
        start = time.perf_counter()
        value = est(x, y)
        elapsed = min(elapsed, time.perf_counter() - start)
    # Both are Gaussian samples: W_2 = sqrt(0.4^2 + (1 - 0.7)^2) = 0.5 in the limit.
    assert elapsed < 1.0
    assert float(value) == pytest.approx(0.5, abs=0.01)


def test_memory_budget_not_applied() -> None:
    # A 60000 x 60000 LP would need 86 GB, but sorting needs a few MB.
    x, y = line_pair(60_000, 60_000, seed=6)
    value = ExactLP(p=1, memory_budget=10**6)(x, y)
    assert float(value) > 0.0


def test_last_solve() -> None:
    x, y = line_pair(20, 15, seed=7)
    est = otbench.estimator("exact", p=2)
    value = est(x, y)
    assert est.last_solve is not None
    assert est.last_solve.value == float(value)
    assert est.last_solve.iterations is None
    assert est.last_solve.converged is True
    assert est.last_solve.seconds > 0.0


def test_float32_follows_input() -> None:
    x, y = line_pair(500, 400, seed=8)
    single = ExactLP(p=2)(x.float(), y.float())
    double = ExactLP(p=2)(x, y)
    assert single.dtype == torch.float32
    assert float(single) == pytest.approx(float(double), rel=1e-6)


@pytest.mark.parametrize("p", [1, 2])
@pytest.mark.parametrize("points", [[[1.0]], [[1.0]] * 5], ids=["one-point", "five-copies"])
def test_identical_inputs_give_zero(p: int, points: list) -> None:
    x = torch.tensor(points).requires_grad_(True)
    value = ExactLP(p=p)(x, torch.tensor(points))
    value.backward()
    assert float(value.detach()) == 0.0
    assert torch.equal(x.grad, torch.zeros_like(x))


def test_duplicate_points_gradient() -> None:
    # x = (0, 0) against y = (-1, 1): W_2^2 = 1, and the two x gradients cancel.
    x = torch.tensor([[0.0], [0.0]], dtype=torch.float64, requires_grad=True)
    y = torch.tensor([[-1.0], [1.0]], dtype=torch.float64)
    squared = ExactLP(p=2)(x, y) ** 2
    squared.backward()
    assert float(squared.detach()) == pytest.approx(1.0, abs=1e-12)
    assert bool(torch.isfinite(x.grad).all())
    assert float(x.grad.sum()) == pytest.approx(0.0, abs=1e-12)
