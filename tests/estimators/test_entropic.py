"""The plain entropic transport cost: bias against W_p, reference values, convergence and input checks."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.special import logsumexp

import otbench
from otbench.estimators import MemoryBudgetError
from otbench.estimators.base import ConvergenceWarning
from otbench.estimators.entropic import EntropicOT

NAME = "sinkhorn-entropic"


def random_pair(n: int, m: int, d: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=generator, dtype=torch.float64)
    y = 0.5 * torch.randn(m, d, generator=generator, dtype=torch.float64) + 0.7
    return x, y


def column(values: list[float]) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64).reshape(-1, 1)


def entropic_transport_reference(cost: np.ndarray, a: np.ndarray, b: np.ndarray, eps: float) -> float:
    """Return the primal <P, C> + eps KL(P | a x b) by a plain numpy log-domain Sinkhorn loop run to 1e-14."""
    f, g = np.zeros(len(a)), np.zeros(len(b))
    for _ in range(200_000):
        f = -eps * logsumexp(np.log(b)[None, :] + (g[None, :] - cost) / eps, axis=1)
        g_new = -eps * logsumexp(np.log(a)[:, None] + (f[:, None] - cost) / eps, axis=0)
        done = np.abs(g_new - g).max() < 1e-14
        g = g_new
        if done:
            break
    plan = a[:, None] * b[None, :] * np.exp((f[:, None] + g[None, :] - cost) / eps)
    ratio = np.where(plan > 0, plan / (a[:, None] * b[None, :]), 1.0)
    return float((plan * cost).sum() + eps * (plan * np.log(ratio)).sum())


def numpy_cost(x: torch.Tensor, y: torch.Tensor, p: int) -> np.ndarray:
    difference = x.numpy()[:, None, :] - y.numpy()[None, :, :]
    return np.sqrt((difference**2).sum(-1)) ** p


# Bias against W_p and the debiased divergence.


@pytest.mark.parametrize("p", [1, 2])
@pytest.mark.parametrize("blur", [1.0, 0.3])
def test_above_debiased_and_exact(p: int, blur: float) -> None:
    x, y = random_pair(12, 10, 2, seed=0)
    entropic = float(EntropicOT(p=p, blur=blur, tol=1e-10, max_iter=20_000)(x, y))
    debiased = float(otbench.estimator("sinkhorn", p=p, blur=blur, tol=1e-10, max_iter=20_000)(x, y))
    exact = float(otbench.estimator("exact", p=p)(x, y))
    assert entropic >= debiased
    assert entropic >= exact - 1e-12


@pytest.mark.parametrize("p", [1, 2])
def test_decreases_toward_exact(p: int) -> None:
    x, y = random_pair(12, 10, 2, seed=1)
    exact = float(otbench.estimator("exact", p=p)(x, y))
    values = [float(EntropicOT(p=p, blur=blur, tol=1e-10, max_iter=50_000)(x, y)) for blur in (1.0, 0.3, 0.1)]
    assert values[0] > values[1]
    assert values[1] > values[2]
    assert values[2] >= exact - 1e-12
    assert values[2] - exact < values[0] - exact


@pytest.mark.parametrize("p", [1, 2])
@pytest.mark.parametrize("weighted", [False, True])
def test_matches_numpy_reference(p: int, weighted: bool) -> None:
    x, y = random_pair(9, 7, 3, seed=2)
    rng = np.random.default_rng(3)
    a = rng.random(9) + 0.1 if weighted else np.ones(9)
    b = rng.random(7) + 0.1 if weighted else np.ones(7)
    a, b = a / a.sum(), b / b.sum()
    blur = 0.5
    est = EntropicOT(p=p, blur=blur, tol=1e-12, max_iter=50_000)
    value = float(est(x, y, torch.from_numpy(a), torch.from_numpy(b)))
    reference = entropic_transport_reference(numpy_cost(x, y, p), a, b, blur**p)
    assert value**p == pytest.approx(reference, rel=1e-9)


def test_crossing_pairs_entropic_value() -> None:
    # The LP matches 0 -> 10 and 1 -> 11 for a cost of 100. At eps = 1 the
    # entropic plan moves 1 / (1 + e) of the mass along the crossed pairs, so
    # its transport cost is 100.26894142 and OT_eps adds eps KL(P | a x b).
    est = EntropicOT(p=2, blur=1.0, tol=1e-12)
    value = float(est(column([0.0, 1.0]), column([10.0, 11.0])))
    q = 1 / (1 + math.e)
    kl = 2 * (q / 2) * math.log(2 * q) + 2 * ((1 - q) / 2) * math.log(2 * (1 - q))
    assert value**2 == pytest.approx(100.26894142 + kl, rel=1e-9)
    assert est.last_solve is not None
    assert est.last_solve.converged is True


@pytest.mark.parametrize("eps", [0.1, 0.01])
def test_crossing_pairs_small_eps(eps: float) -> None:
    # Near a permutation plan, plain Sinkhorn closes the marginal error like
    # 1 / iterations, so 1000 iterations end about 5e-4 short and warn.
    est = EntropicOT(p=2, blur=math.sqrt(eps), tol=1e-6, max_iter=1000)
    with pytest.warns(ConvergenceWarning, match=r"after 1000 iterations"):
        value = float(est(column([0.0, 1.0]), column([10.0, 11.0])))
    assert math.isfinite(value)
    # OT_eps exceeds the LP's 100 by at most eps KL(P | a x b) <= eps log 2.
    assert 100.0 - 1e-3 <= value**2 <= 100.0 + eps * math.log(2) + 1e-3
    assert est.last_solve is not None
    assert est.last_solve.converged is False
    assert est.last_solve.marginal_error > 1e-6


@pytest.mark.parametrize("p", [1, 2])
def test_single_diracs(p: int) -> None:
    value = EntropicOT(p=p)(column([0.0]), column([3.0]))
    assert float(value) == pytest.approx(3.0, rel=1e-12)


@pytest.mark.parametrize("p", [1, 2])
def test_columns_versus_one_point(p: int) -> None:
    u = torch.tensor([0.0, 1.0, 3.0], dtype=torch.float64)
    v = torch.tensor([5.0, 6.0, 8.0], dtype=torch.float64)
    est = EntropicOT(p=p, blur=1.0, tol=1e-12)
    columns = float(est(u.reshape(3, 1), v.reshape(3, 1)))
    third = np.full(3, 1 / 3)
    reference = entropic_transport_reference(numpy_cost(u.reshape(3, 1), v.reshape(3, 1), p), third, third, 1.0)
    assert columns**p == pytest.approx(reference, rel=1e-9)
    assert columns >= 5.0 - 1e-12
    assert float(est(u.reshape(1, 3), v.reshape(1, 3))) == pytest.approx(math.sqrt(75), rel=1e-12)


def test_columns_w1_any_eps() -> None:
    # Every x lies left of every y, so every coupling costs mean(v) - mean(u) = 5.
    u = column([0.0, 1.0, 3.0])
    v = column([5.0, 6.0, 8.0])
    assert float(EntropicOT(p=1, blur=0.3)(u, v)) == pytest.approx(5.0, rel=1e-9)


# Degenerate inputs.


@pytest.mark.parametrize("p", [1, 2])
@pytest.mark.parametrize(
    "points",
    [[[1.0]], [[1.0, 2.0]], [[1.0]] * 5],
    ids=["one-point-1d", "one-point-2d", "five-copies"],
)
def test_coinciding_points_give_zero(p: int, points: list) -> None:
    # Every cost is 0, so every plan costs 0.
    x = torch.tensor(points).requires_grad_(True)
    y = torch.tensor(points)
    value = EntropicOT(p=p)(x, y)
    value.backward()
    assert float(value.detach()) == 0.0
    assert torch.equal(x.grad, torch.zeros_like(x))


@pytest.mark.parametrize("p", [1, 2])
def test_identical_samples_keep_bias(p: int) -> None:
    x, _ = random_pair(8, 1, 2, seed=4)
    x.requires_grad_(True)
    blur = 1.0
    value = EntropicOT(p=p, blur=blur, tol=1e-12)(x, x.detach().clone())
    value.backward()
    half = np.full(8, 1 / 8)
    reference = entropic_transport_reference(numpy_cost(x.detach(), x.detach(), p), half, half, blur**p)
    assert float(value.detach()) > 0.0
    assert float(value.detach()) ** p == pytest.approx(reference, rel=1e-9)
    assert bool(torch.isfinite(x.grad).all())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("blur", [0.05, 1.0])
def test_zero_mass_points(dtype: torch.dtype, blur: float) -> None:
    corners = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], dtype=dtype)
    x = corners.clone().requires_grad_(True)
    y = corners.clone().requires_grad_(True)
    a = torch.tensor([0.0, 1.0, 0.0, 0.0], dtype=dtype, requires_grad=True)
    b = torch.tensor([1.0, 0.0, 0.0, 0.0], dtype=dtype, requires_grad=True)
    value = EntropicOT(p=1, blur=blur)(x, y, a, b)
    value.backward()
    assert float(value.detach()) == pytest.approx(1.0, abs=1e-6)
    for tensor in (x, y, a, b):
        assert tensor.grad is not None
        assert bool(torch.isfinite(tensor.grad).all())


# Gradients.


@pytest.mark.parametrize("p", [1, 2])
def test_gradient_finite_differences(p: int) -> None:
    torch.manual_seed(0)
    x = torch.randn(10, 2, dtype=torch.float64, requires_grad=True)
    y = torch.randn(12, 2, dtype=torch.float64)
    est = EntropicOT(p=p, blur=1.0, tol=1e-13, max_iter=10_000)
    value = est(x, y)
    assert value.grad_fn is not None
    (grad,) = torch.autograd.grad(value, x)
    numeric = torch.zeros_like(x)
    h = 1e-5
    for i in range(10):
        for j in range(2):
            up, down = x.detach().clone(), x.detach().clone()
            up[i, j] += h
            down[i, j] -= h
            numeric[i, j] = (est(up, y) - est(down, y)) / (2 * h)
    assert torch.allclose(grad, numeric, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_gradient_reaches_x(dtype: torch.dtype) -> None:
    x, y = random_pair(16, 12, 3, seed=5)
    x = x.to(dtype).requires_grad_(True)
    value = EntropicOT(p=2, blur=0.5)(x, y)
    value.backward()
    assert value.dtype == dtype
    assert x.grad is not None
    assert bool(torch.isfinite(x.grad).all())
    assert float(x.grad.abs().sum()) > 0.0


# Convergence reporting.


def test_last_solve_converged() -> None:
    x, y = random_pair(16, 12, 2, seed=6)
    est = EntropicOT(p=2, blur=0.5, tol=1e-8)
    value = est(x, y)
    assert est.last_solve is not None
    assert est.last_solve.value == float(value)
    assert est.last_solve.converged is True
    assert est.last_solve.iterations is not None
    assert 1 < est.last_solve.iterations < 1000
    assert est.last_solve.marginal_error is not None
    assert est.last_solve.marginal_error <= 1e-8
    assert est.last_solve.seconds > 0.0


def test_truncated_solve_warns() -> None:
    x, y = random_pair(16, 12, 2, seed=7)
    est = EntropicOT(p=2, blur=0.1, max_iter=2)
    with pytest.warns(ConvergenceWarning, match=r"after 2 iterations.*Raise max_iter") as record:
        value = est(x, y)
    assert record[0].filename == __file__
    assert est.last_solve is not None
    assert est.last_solve.converged is False
    assert est.last_solve.iterations == 2
    assert est.last_solve.marginal_error > 1e-6
    assert math.isfinite(float(value))


# Memory, registry and input checks.


def test_memory_budget_before_allocation() -> None:
    est = EntropicOT(p=2, memory_budget=10**9)
    x = torch.zeros(60000, 2, dtype=torch.float64)
    with pytest.raises(MemoryBudgetError, match=r"n=60000, m=60000") as info:
        est(x, x)
    assert info.value.needed > 28.8e9


def test_memory_independent_of_iterations() -> None:
    # No graph is kept through the iterations, so a gradient costs no more memory.
    x, y = random_pair(300, 300, 2, seed=8)
    est = EntropicOT(p=2, blur=1.0, max_iter=100_000, memory_budget=5 * 300 * 300 * 8)
    value = est(x.requires_grad_(True), y)
    value.backward()
    assert bool(torch.isfinite(x.grad).all())


def test_registry_and_capabilities() -> None:
    capabilities = otbench.capabilities(NAME)
    assert NAME in otbench.available_estimators()
    assert capabilities.orders == (1, 2)
    assert capabilities.weights is True
    assert capabilities.inner_loop is True
    assert capabilities.exact is False
    assert capabilities.scale_known is True


def test_config_records_eps() -> None:
    config = otbench.estimator(NAME, p=2, blur=0.1).config()
    assert config["eps"] == pytest.approx(0.01, rel=1e-12)
    assert config["blur"] == 0.1
    assert config["max_iter"] == 10000
    assert config["tol"] == 1e-3


def test_images_flattened() -> None:
    x, y = torch.zeros(3, 1, 2, 2), torch.ones(3, 1, 2, 2)
    assert float(otbench.estimator(NAME, p=2)(x, y)) == pytest.approx(2.0, rel=1e-6)


def test_empty_input_rejected() -> None:
    with pytest.raises(ValueError, match=r"x is empty"):
        otbench.estimator(NAME)(torch.zeros(0, 2), torch.ones(3, 2))


def test_nan_rejected() -> None:
    x = torch.zeros(4, 2)
    x[1, 0] = float("nan")
    with pytest.raises(ValueError, match=r"x contains 1 NaN or inf"):
        otbench.estimator(NAME)(x, torch.zeros(4, 2))


def test_bare_vector_rejected() -> None:
    with pytest.raises(ValueError, match=r"reshape\(-1, 1\)"):
        otbench.estimator(NAME)(torch.tensor([0.0, 1.0, 3.0]), column([5.0, 6.0, 8.0]))


def test_feature_mismatch() -> None:
    with pytest.raises(ValueError, match=r"x has shape \(5, 2\) and y has shape \(5, 3\)"):
        otbench.estimator(NAME)(torch.zeros(5, 2), torch.zeros(5, 3))


def test_unsupported_order() -> None:
    with pytest.raises(ValueError, match=r"p=3 is not supported.*\[1, 2\]"):
        otbench.estimator(NAME, p=3)


@pytest.mark.parametrize(
    "params, pattern",
    [
        ({"blur": 0.0}, r"blur=0\.0 is invalid"),
        ({"blur": float("inf")}, r"blur=inf is invalid"),
        ({"max_iter": 0}, r"max_iter=0 is invalid; expected a positive integer"),
        ({"max_iter": 10.5}, r"max_iter=10\.5 is invalid"),
        ({"tol": -1.0}, r"tol=-1\.0 is invalid"),
        ({"memory_budget": -5}, r"memory_budget=-5 is invalid"),
    ],
)
def test_invalid_parameters(params: dict, pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        otbench.estimator(NAME, **params)
