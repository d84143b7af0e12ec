"""Tests of the brenier problem: convexity of psi, the map grad psi and the true W_2."""

from __future__ import annotations

import functools
import math

import pytest
import torch

import otbench
from otbench import problems
from otbench.problems import Brenier


@functools.cache
def _shared(d: int, paired: bool) -> Brenier:
    """Default problem in dimension d, built once: problems are immutable."""
    return Brenier(d=d, paired=paired)


@pytest.fixture
def plane() -> Brenier:
    return _shared(2, True)


@pytest.fixture
def plane_unpaired() -> Brenier:
    return _shared(2, False)


@pytest.mark.parametrize(("d", "param_seed", "hidden"), [(2, 0, 64), (5, 1, 16), (8, 0, 64)])
def test_hessian_eigenvalues_at_least_alpha(d: int, param_seed: int, hidden: int) -> None:
    if (param_seed, hidden) == (0, 64):
        problem = _shared(d, False)
    else:
        problem = Brenier(d=d, param_seed=param_seed, hidden=hidden)
    x, y = problem.sample(100, seed=0)
    points = torch.cat([x, y, 4 * torch.randn(50, d, dtype=torch.float64, generator=torch.Generator().manual_seed(0))])
    hessians = problem.hessian(points)
    assert hessians.shape == (250, d, d)
    assert torch.allclose(hessians, hessians.transpose(1, 2), rtol=0, atol=1e-12)
    assert float(torch.linalg.eigvalsh(hessians).min()) >= problem.strong_convexity - 1e-9


def test_transport_map_is_autograd_gradient() -> None:
    problem = Brenier(d=3, hidden=16)
    x, _ = problem.sample(64, seed=1)
    points = x.clone().requires_grad_(True)
    (gradient,) = torch.autograd.grad(problem.psi(points).sum(), points)
    assert torch.allclose(problem.transport_map(x), gradient, rtol=0, atol=1e-12)


def test_transport_map_keeps_no_graph(plane: Brenier) -> None:
    x, _ = plane.sample(8, seed=0)
    mapped = plane.transport_map(x.clone().requires_grad_(True))
    assert not mapped.requires_grad


def test_transport_map_under_no_grad(plane: Brenier) -> None:
    x, y = plane.sample(8, seed=0)
    with torch.no_grad():
        mapped = plane.transport_map(x)
    assert torch.allclose(mapped, y, rtol=0, atol=1e-12)


def test_paired_target_is_gradient(plane: Brenier) -> None:
    x, y = plane.sample(200, seed=2)
    assert torch.allclose(plane.transport_map(x), y, rtol=0, atol=1e-12)


def test_exact_lp_on_paired_equals_pairing_cost(plane: Brenier) -> None:
    """The pairing (x_i, y_i) is one coupling of the two empirical measures,
    so the exact W_2 is at most sqrt(mean ||x_i - y_i||^2).

    It is also optimal. For n points on each side with equal weights some
    permutation sigma is an optimal coupling, and its cost is
    const - (2/n) sum_i <x_sigma(i), y_i>. Convexity gives
    psi(x_sigma(i)) >= psi(x_i) + <y_i, x_sigma(i) - x_i>, and summing over i
    cancels the psi terms, so sum_i <x_sigma(i), y_i> <= sum_i <x_i, y_i>. So
    the exact W_2 equals sqrt(mean ||x_i - y_i||^2).
    """
    x, y = plane.sample(300, seed=3)
    value = float(otbench.estimator("exact", p=2)(x, y))
    pairing = math.sqrt(float((x - y).square().sum(dim=1).mean()))
    assert value <= pairing + 1e-9
    assert abs(value - pairing) < 1e-9


@pytest.mark.slow
def test_exact_lp_paired_approaches_true_distance(plane: Brenier) -> None:
    """On paired samples the exact empirical W_2 never exceeds
    sqrt(mean ||x_i - y_i||^2), because the pairing is a coupling, and equals it
    because y_i = grad psi(x_i) (see the test above). So it is a Monte Carlo
    estimate of the true W_2, and its error shrinks like 1 / sqrt(n).
    """
    estimator = otbench.estimator("exact", p=2)
    truth = plane.true_distance(2)
    errors = []
    for n in (64, 256, 1024):
        values = [float(estimator(*plane.sample(n, seed=seed))) for seed in range(4)]
        errors.append(sum(abs(value - truth) for value in values) / len(values))
    assert errors[2] < errors[0]
    # The standard error of one estimate at n = 1024 is about 0.007.
    assert errors[2] < 0.03


@pytest.mark.slow
def test_exact_lp_unpaired_approaches_true_distance(plane_unpaired: Brenier) -> None:
    problem = plane_unpaired
    estimator = otbench.estimator("exact", p=2)
    truth = problem.true_distance(2)
    errors = []
    for n in (64, 1024):
        values = [float(estimator(*problem.sample(n, seed=seed))) for seed in range(3)]
        errors.append(sum(abs(value - truth) for value in values) / len(values))
    assert errors[1] < errors[0]
    # For seeds 0 to 2 the mean error at n = 1024 was 0.023.
    assert errors[1] < 0.06


@pytest.mark.parametrize("d", [2, 8])
def test_true_distance_matches_fresh_monte_carlo(d: int) -> None:
    problem = _shared(d, True)
    x, y = problem.sample(2**14, seed=4)
    squared = (x - y).square().sum(dim=1)
    fresh = math.sqrt(float(squared.mean()))
    fresh_stderr = float(squared.std()) / math.sqrt(len(squared)) / (2 * fresh)
    combined = math.hypot(fresh_stderr, problem.true_distance_stderr(2))
    assert abs(fresh - problem.true_distance(2)) < 4 * combined


@pytest.mark.parametrize("d", [2, 8])
def test_true_distance_near_one(d: int) -> None:
    problem = _shared(d, False)
    assert abs(problem.true_distance(2) - 1.0) < 0.1
    assert 0 < problem.true_distance_stderr(2) < 0.01


def test_true_gradient_is_scaled_displacement(plane: Brenier) -> None:
    x, y = plane.sample(30, seed=5)
    expected = (y - x) / (30 * plane.true_distance(2))
    assert torch.allclose(plane.true_gradient(x, 2), expected, rtol=0, atol=1e-12)


def test_unpaired_target_independent_of_source(plane_unpaired: Brenier) -> None:
    x, y = plane_unpaired.sample(50, seed=6)
    assert not torch.allclose(plane_unpaired.transport_map(x), y)


def test_registry_builds_brenier() -> None:
    problem = problems.get("brenier", d=3, components=2, hidden=8)
    assert isinstance(problem, Brenier)
    assert problem.means.shape == (2, 3)
    assert torch.allclose(problem.means.norm(dim=1), torch.full((2,), 1.5, dtype=torch.float64))


def test_param_seed_changes_psi() -> None:
    points = torch.zeros(1, 2, dtype=torch.float64)
    first = Brenier(param_seed=0, hidden=8).psi(points)
    second = Brenier(param_seed=1, hidden=8).psi(points)
    assert not torch.equal(first, second)


def test_paired_rejects_other_m(plane: Brenier) -> None:
    with pytest.raises(ValueError, match="m=5"):
        plane.sample(4, seed=0, m=5)


def test_order_one_rejected(plane: Brenier) -> None:
    with pytest.raises(ValueError, match=r"p=1 is invalid"):
        plane.true_distance(1)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"d": 0}, "d=0"),
        ({"d": 1.5}, "d=1.5"),
        ({"components": 0}, "components=0"),
        ({"hidden": 0}, "hidden=0"),
        ({"hidden": True}, "hidden=True"),
        ({"param_seed": -3}, "param_seed=-3"),
        ({"paired": "yes"}, "paired='yes'"),
    ],
)
def test_invalid_param_raises(params: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Brenier(**params)


def test_psi_rejects_wrong_shape(plane: Brenier) -> None:
    with pytest.raises(ValueError, match=r"expected \(n, 2\)"):
        plane.psi(torch.zeros(4, dtype=torch.float64))


def test_hessian_rejects_wrong_shape(plane: Brenier) -> None:
    with pytest.raises(ValueError, match=r"expected \(n, 2\)"):
        plane.hessian(torch.zeros(3, 5, dtype=torch.float64))


def test_inference_mode_supported():
    # The map is computed by autograd, which must still work inside a caller's inference_mode.
    with torch.inference_mode():
        problem = problems.get("brenier", d=2)
        x, y = problem.sample(8, seed=0, m=8)
        mapped = problem.transport_map(x)
    assert mapped.shape == (8, 2)
    assert torch.isfinite(mapped).all()
