"""Sliced and max-sliced Wasserstein estimators: bounds, known values, seeding and input checks."""

from __future__ import annotations

import math

import pytest
import torch

import otbench
from otbench.estimators import MemoryBudgetError
from otbench.estimators.sliced import MaxSlicedWasserstein, SlicedWasserstein, random_directions

NAMES = ["sliced", "max-sliced"]


def random_pair(n: int, m: int, d: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=generator, dtype=torch.float64)
    y = 0.5 * torch.randn(m, d, generator=generator, dtype=torch.float64) + 0.7
    return x, y


def column(values: list[float]) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64).reshape(-1, 1)


# Bounds and known values.


@pytest.mark.parametrize("p", [1, 2])
@pytest.mark.parametrize("d", [2, 5])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sliced_below_max_below_exact(p: int, d: int, seed: int) -> None:
    x, y = random_pair(30, 25, d, seed)
    sliced = float(otbench.estimator("sliced", p=p, projections=64, seed=seed)(x, y))
    max_sliced = float(otbench.estimator("max-sliced", p=p, projections=64, seed=seed)(x, y))
    exact = float(otbench.estimator("exact", p=p)(x, y))
    assert sliced > 0.0
    assert sliced <= max_sliced
    assert max_sliced <= exact + 1e-12


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("p", [1, 2])
def test_one_feature_equals_exact(name: str, p: int) -> None:
    x, y = random_pair(40, 33, 1, seed=3)
    value = float(otbench.estimator(name, p=p, projections=8)(x, y))
    exact = float(otbench.estimator("exact", p=p)(x, y))
    assert value == pytest.approx(exact, rel=1e-10)


@pytest.mark.parametrize("d", [2, 5])
def test_translation_exact_in_directions(d: int) -> None:
    # Each projection of a translate is the same line measure shifted by <theta, t>.
    x, _ = random_pair(30, 1, d, seed=4)
    t = torch.linspace(-1.0, 2.0, d, dtype=torch.float64)
    est = SlicedWasserstein(p=2, projections=32, seed=5)
    directions = random_directions(d, 32, 5, x)
    expected = math.sqrt(float((directions.T @ t).pow(2).mean()))
    assert float(est(x, x + t)) == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize("d", [2, 5])
def test_translation_scale(d: int) -> None:
    # For theta uniform on the sphere, E[<theta, t>^2] = ||t||^2 / d.
    x, _ = random_pair(30, 1, d, seed=6)
    t = torch.linspace(-1.0, 2.0, d, dtype=torch.float64)
    sliced = float(SlicedWasserstein(p=2, projections=4096)(x, x + t))
    max_sliced = float(MaxSlicedWasserstein(p=2, projections=4096)(x, x + t))
    assert sliced == pytest.approx(float(t.norm()) / math.sqrt(d), rel=0.03)
    assert max_sliced <= float(t.norm()) + 1e-12
    assert max_sliced == pytest.approx(float(t.norm()), rel=0.01)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("p", [1, 2])
def test_single_diracs(name: str, p: int) -> None:
    value = otbench.estimator(name, p=p)(column([0.0]), column([3.0]))
    assert float(value) == pytest.approx(3.0, rel=1e-12)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("p", [1, 2])
def test_columns_versus_one_point(name: str, p: int) -> None:
    u = torch.tensor([0.0, 1.0, 3.0], dtype=torch.float64)
    v = torch.tensor([5.0, 6.0, 8.0], dtype=torch.float64)
    est = otbench.estimator(name, p=p)
    assert float(est(u.reshape(3, 1), v.reshape(3, 1))) == pytest.approx(5.0, rel=1e-12)
    # One point in R^3: every projection moves it by |<theta, (5, 5, 5)>| <= sqrt(75).
    one_point = float(est(u.reshape(1, 3), v.reshape(1, 3)))
    assert one_point < math.sqrt(75)
    assert one_point > 0.0


def test_one_point_sliced_value() -> None:
    u = torch.tensor([[0.0, 1.0, 3.0]], dtype=torch.float64)
    v = torch.tensor([[5.0, 6.0, 8.0]], dtype=torch.float64)
    value = float(SlicedWasserstein(p=2, projections=4096)(u, v))
    # E[<theta, s>^2] = ||s||^2 / 3 = 25 for the shift s = (5, 5, 5).
    assert value == pytest.approx(5.0, rel=0.03)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("p", [1, 2])
def test_weights_match_duplicated_points(name: str, p: int) -> None:
    x, y = random_pair(3, 4, 3, seed=7)
    a = torch.tensor([0.5, 0.25, 0.25], dtype=torch.float64)
    duplicated = torch.cat([x[:1], x])
    est = otbench.estimator(name, p=p, projections=16)
    assert float(est(x, y, a=a)) == pytest.approx(float(est(duplicated, y)), rel=1e-12)


# Seeding.


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_value(name: str) -> None:
    x, y = random_pair(20, 20, 4, seed=8)
    first = otbench.estimator(name, seed=3)
    second = otbench.estimator(name, seed=3)
    assert float(first(x, y)) == float(first(x, y))
    assert float(first(x, y)) == float(second(x, y))


@pytest.mark.parametrize("name", NAMES)
def test_different_seed_differs(name: str) -> None:
    x, y = random_pair(20, 20, 4, seed=9)
    assert float(otbench.estimator(name, seed=0)(x, y)) != float(otbench.estimator(name, seed=1)(x, y))


@pytest.mark.parametrize("name", NAMES)
def test_global_rng_untouched(name: str) -> None:
    x, y = random_pair(20, 20, 4, seed=10)
    torch.manual_seed(123)
    state = torch.get_rng_state()
    otbench.estimator(name, seed=7)(x, y)
    assert torch.equal(torch.get_rng_state(), state)


# Gradients.


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_gradient_reaches_x(name: str, dtype: torch.dtype) -> None:
    x, y = random_pair(16, 12, 3, seed=11)
    x = x.to(dtype).requires_grad_(True)
    a = torch.full((16,), 1 / 16, dtype=dtype, requires_grad=True)
    value = otbench.estimator(name, p=2)(x, y, a=a)
    value.backward()
    assert value.dtype == dtype
    assert value.grad_fn is not None
    assert x.grad is not None
    assert bool(torch.isfinite(x.grad).all())
    assert float(x.grad.abs().sum()) > 0.0
    assert a.grad is not None
    assert bool(torch.isfinite(a.grad).all())


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("p", [1, 2])
def test_gradient_finite_differences(name: str, p: int) -> None:
    torch.manual_seed(0)
    x = torch.randn(10, 2, dtype=torch.float64, requires_grad=True)
    y = torch.randn(12, 2, dtype=torch.float64)
    est = otbench.estimator(name, p=p, projections=32, seed=4)
    value = est(x, y)
    (grad,) = torch.autograd.grad(value, x)
    numeric = torch.zeros_like(x)
    h = 1e-6
    for i in range(10):
        for j in range(2):
            up, down = x.detach().clone(), x.detach().clone()
            up[i, j] += h
            down[i, j] -= h
            numeric[i, j] = (est(up, y) - est(down, y)) / (2 * h)
    assert torch.allclose(grad, numeric, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("p", [1, 2])
@pytest.mark.parametrize(
    "points",
    [[[1.0]], [[1.0, 2.0]], [[1.0]] * 5],
    ids=["one-point-1d", "one-point-2d", "five-copies"],
)
def test_identical_inputs_give_zero(name: str, p: int, points: list) -> None:
    x = torch.tensor(points).requires_grad_(True)
    y = torch.tensor(points)
    value = otbench.estimator(name, p=p)(x, y)
    value.backward()
    assert float(value.detach()) == 0.0
    assert torch.equal(x.grad, torch.zeros_like(x))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("p", [1, 2])
def test_identical_samples_give_zero(name: str, p: int) -> None:
    x, _ = random_pair(20, 1, 3, seed=12)
    x.requires_grad_(True)
    value = otbench.estimator(name, p=p)(x, x.detach().clone())
    value.backward()
    assert float(value.detach()) == 0.0
    assert bool(torch.isfinite(x.grad).all())
    assert float(x.grad.abs().max()) == 0.0


# Contract, memory and input checks.


@pytest.mark.parametrize("name", NAMES)
def test_registry_and_capabilities(name: str) -> None:
    capabilities = otbench.capabilities(name)
    assert name in otbench.available_estimators()
    assert capabilities.orders == (1, 2)
    assert capabilities.weights is True
    assert capabilities.inner_loop is False
    assert capabilities.exact is False
    assert capabilities.scale_known is True


@pytest.mark.parametrize("name", NAMES)
def test_last_solve_and_config(name: str) -> None:
    x, y = random_pair(10, 10, 2, seed=13)
    est = otbench.estimator(name, p=1, projections=20, seed=2)
    value = est(x, y)
    assert est.last_solve is not None
    assert est.last_solve.value == float(value)
    assert est.last_solve.iterations is None
    assert est.last_solve.converged is True
    assert est.last_solve.seconds > 0.0
    assert est.config() == {"p": 1, "projections": 20, "seed": 2, "memory_budget": None}


@pytest.mark.parametrize("name", NAMES)
def test_images_flattened(name: str) -> None:
    x, y = torch.zeros(3, 1, 2, 2), torch.ones(3, 1, 2, 2)
    flat = otbench.estimator(name, p=2)(x.flatten(1), y.flatten(1))
    assert float(otbench.estimator(name, p=2)(x, y)) == float(flat)


@pytest.mark.parametrize("name", NAMES)
def test_memory_budget_before_allocation(name: str) -> None:
    est = otbench.estimator(name, projections=128, memory_budget=10**9)
    x = torch.zeros(10**6, 2)
    with pytest.raises(MemoryBudgetError, match=r"n=1000000, m=1000000") as info:
        est(x, x)
    assert info.value.needed > 10**9


@pytest.mark.parametrize("name", NAMES)
def test_empty_input_rejected(name: str) -> None:
    with pytest.raises(ValueError, match=r"x is empty"):
        otbench.estimator(name)(torch.zeros(0, 2), torch.ones(3, 2))


@pytest.mark.parametrize("name", NAMES)
def test_nan_rejected(name: str) -> None:
    x = torch.zeros(4, 2)
    x[1, 0] = float("nan")
    with pytest.raises(ValueError, match=r"x contains 1 NaN or inf"):
        otbench.estimator(name)(x, torch.zeros(4, 2))


@pytest.mark.parametrize("name", NAMES)
def test_bare_vector_rejected(name: str) -> None:
    with pytest.raises(ValueError, match=r"reshape\(-1, 1\)"):
        otbench.estimator(name)(torch.tensor([0.0, 1.0, 3.0]), column([5.0, 6.0, 8.0]))


@pytest.mark.parametrize("name", NAMES)
def test_feature_mismatch(name: str) -> None:
    with pytest.raises(ValueError, match=r"x has shape \(5, 2\) and y has shape \(5, 3\)"):
        otbench.estimator(name)(torch.zeros(5, 2), torch.zeros(5, 3))


@pytest.mark.parametrize("name", NAMES)
def test_unsupported_order(name: str) -> None:
    with pytest.raises(ValueError, match=r"p=3 is not supported.*\[1, 2\]"):
        otbench.estimator(name, p=3)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(
    "params, pattern",
    [
        ({"projections": 0}, r"projections=0 is invalid; expected a positive integer"),
        ({"projections": 2.5}, r"projections=2\.5 is invalid"),
        ({"seed": -1}, r"seed=-1 is invalid; expected a non-negative integer"),
        ({"seed": True}, r"seed=True is invalid"),
        ({"memory_budget": 0}, r"memory_budget=0 is invalid"),
    ],
)
def test_invalid_parameters(name: str, params: dict, pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        otbench.estimator(name, **params)
