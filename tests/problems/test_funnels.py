"""Tests of the funnels problem: the potential, the rays, the pairing and the true W_1."""

from __future__ import annotations

import functools
import math

import pytest
import torch

import otbench
from otbench import problems
from otbench.problems import Funnels

# Small configurations: the default, more centres, and a higher dimension.
CONFIGS = [
    {"d": 2, "funnels": 4},
    {"d": 3, "funnels": 9, "deg": 3.0, "half_width": 2.0},
    {"d": 8, "funnels": 16, "param_seed": 3},
]
CONFIG_IDS = ["d2-k4", "d3-k9-deg3", "d8-k16"]


@functools.cache
def _shared(config_id: str, paired: bool) -> Funnels:
    """Problem of one of CONFIGS, built once: problems are immutable."""
    return Funnels(**CONFIGS[CONFIG_IDS.index(config_id)], paired=paired)


def _active_centres(problem: Funnels, z: torch.Tensor) -> torch.Tensor:
    """Index of the argmin centre of u at each row of z."""
    values = torch.cdist(z, problem.centres) + problem.offsets
    return values.argmin(dim=1)


@pytest.mark.parametrize("config_id", CONFIG_IDS)
def test_potential_is_one_lipschitz(config_id: str) -> None:
    problem = _shared(config_id, False)
    generator = torch.Generator().manual_seed(0)
    width = 2 * problem.params()["half_width"]
    a = width * (2 * torch.rand(2000, problem.dim, generator=generator, dtype=torch.float64) - 1)
    b = a + 0.3 * torch.randn(2000, problem.dim, generator=generator, dtype=torch.float64)
    change = (problem.potential(a) - problem.potential(b)).abs()
    assert bool((change <= torch.linalg.vector_norm(a - b, dim=1) + 1e-12).all())


@pytest.mark.parametrize("config_id", CONFIG_IDS)
def test_potential_gradient_unit_norm(config_id: str) -> None:
    problem = _shared(config_id, False)
    generator = torch.Generator().manual_seed(1)
    z = (2 * torch.rand(500, problem.dim, generator=generator, dtype=torch.float64) - 1).requires_grad_(True)
    (gradient,) = torch.autograd.grad(problem.potential(z).sum(), z)
    norms = torch.linalg.vector_norm(gradient, dim=1)
    assert torch.allclose(norms, torch.ones_like(norms), rtol=0, atol=1e-12)


@pytest.mark.parametrize("config_id", CONFIG_IDS)
def test_pair_lies_on_one_ray(config_id: str) -> None:
    problem = _shared(config_id, True)
    x, y = problem.sample(1000, seed=2)
    active = _active_centres(problem, y)
    centre = problem.centres[active]
    from_centre_x = x - centre
    from_centre_y = y - centre
    length_x = torch.linalg.vector_norm(from_centre_x, dim=1)
    length_y = torch.linalg.vector_norm(from_centre_y, dim=1)
    # Parallel and pointing the same way: x - c_k . y - c_k = ||x - c_k|| ||y - c_k||.
    alignment = (from_centre_x * from_centre_y).sum(dim=1) - length_x * length_y
    assert torch.equal(_active_centres(problem, x), active)
    assert float(alignment.abs().max()) < 1e-12
    assert bool((length_x <= length_y).all())


@pytest.mark.parametrize("config_id", CONFIG_IDS)
def test_pair_potential_gap_is_length(config_id: str) -> None:
    problem = _shared(config_id, True)
    x, y = problem.sample(2000, seed=3)
    gap = problem.potential(y) - problem.potential(x)
    assert float((gap - torch.linalg.vector_norm(y - x, dim=1)).abs().max()) < 1e-10


@pytest.mark.parametrize("paired", [False, True])
def test_samples_stay_in_cube(paired: bool) -> None:
    problem = Funnels(d=3, funnels=6, half_width=2.5, paired=paired)
    x, y = problem.sample(3000, seed=4)
    assert float(x.abs().max()) <= 2.5
    assert float(y.abs().max()) <= 2.5


def test_unpaired_same_seed_same_pair() -> None:
    problem = Funnels(d=4, funnels=5)
    x1, y1 = problem.sample(50, seed=7, m=30)
    x2, y2 = problem.sample(50, seed=7, m=30)
    assert torch.equal(x1, x2)
    assert torch.equal(y1, y2)


def test_unpaired_target_independent_of_source() -> None:
    # Unpaired, y is a separate uniform draw, so x is not the funnel image of y.
    problem = Funnels(d=2)
    x, y = problem.sample(200, seed=8)
    assert not torch.allclose(problem.transport_map(x), y)


@pytest.mark.parametrize("config_id", CONFIG_IDS)
def test_transport_map_returns_paired_target(config_id: str) -> None:
    problem = _shared(config_id, True)
    x, y = problem.sample(2000, seed=5)
    centre = problem.centres[_active_centres(problem, x)]
    # Within 1e-6 of a centre the ray direction of x is known only to about
    # 1e-10, so T(x) may miss y by more than the tolerance there.
    resolved = torch.linalg.vector_norm(x - centre, dim=1) > 1e-6
    error = torch.linalg.vector_norm(problem.transport_map(x) - y, dim=1)
    assert float(resolved.double().mean()) > 0.9
    assert float(error[resolved].max()) < 1e-9


def test_transport_map_keeps_float32() -> None:
    problem = Funnels(d=2, paired=True)
    x, _ = problem.sample(10, seed=0)
    assert problem.transport_map(x.float()).dtype == torch.float32


def test_transport_map_rejects_points_outside_cube() -> None:
    problem = Funnels(d=2)
    with pytest.raises(ValueError, match="outside the cube"):
        problem.transport_map(torch.tensor([[0.0, 1.5]], dtype=torch.float64))


@pytest.mark.parametrize("config_id", CONFIG_IDS)
def test_true_distance_matches_fresh_monte_carlo(config_id: str) -> None:
    problem = _shared(config_id, True)
    x, y = problem.sample(2**15, seed=11)
    lengths = torch.linalg.vector_norm(x - y, dim=1)
    fresh = float(lengths.mean())
    fresh_stderr = float(lengths.std()) / math.sqrt(len(lengths))
    combined = math.hypot(fresh_stderr, problem.true_distance_stderr(1))
    assert abs(fresh - problem.true_distance(1)) < 4 * combined


def test_true_distance_stderr_positive_and_small() -> None:
    problem = Funnels(d=4, funnels=8)
    stderr = problem.true_distance_stderr(1)
    assert stderr > 0
    assert stderr < 0.01 * problem.true_distance(1)


def test_true_distance_scales_with_half_width() -> None:
    unit = Funnels(d=3, funnels=5)
    doubled = Funnels(d=3, funnels=5, half_width=2.0)
    assert math.isclose(doubled.true_distance(1), 2 * unit.true_distance(1), rel_tol=1e-12)
    assert math.isclose(doubled.true_distance_stderr(1), 2 * unit.true_distance_stderr(1), rel_tol=1e-9)


def test_degree_one_gives_equal_distributions() -> None:
    problem = Funnels(d=3, deg=1.0, paired=True)
    x, y = problem.sample(100, seed=0)
    assert problem.true_distance(1) < 1e-12
    assert torch.allclose(x, y, rtol=0, atol=1e-12)


def test_true_gradient_unit_rows_over_n() -> None:
    problem = Funnels(d=3, funnels=5)
    x, _ = problem.sample(40, seed=6)
    gradient = problem.true_gradient(x, 1)
    norms = torch.linalg.vector_norm(gradient, dim=1)
    assert gradient.shape == (40, 3)
    assert torch.allclose(norms, torch.full_like(norms, 1 / 40), rtol=0, atol=1e-12)


@pytest.mark.parametrize("config_id", CONFIG_IDS)
def test_exact_lp_equals_paired_mean(config_id: str) -> None:
    problem = _shared(config_id, True)
    x, y = problem.sample(200, seed=9)
    value = float(otbench.estimator("exact", p=1)(x, y))
    assert abs(value - float(torch.linalg.vector_norm(x - y, dim=1).mean())) < 1e-9


def test_registry_builds_funnels() -> None:
    problem = problems.get("funnels", d=3, funnels=2)
    assert isinstance(problem, Funnels)
    assert problem.centres.shape == (2, 3)
    assert problem.offsets.shape == (2,)
    assert bool((problem.offsets >= 0).all())


def test_paired_rejects_other_m() -> None:
    with pytest.raises(ValueError, match="m=5"):
        Funnels(paired=True).sample(4, seed=0, m=5)


def test_order_two_rejected() -> None:
    with pytest.raises(ValueError, match=r"p=2 is invalid"):
        Funnels().true_distance(2)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"d": 0}, "d=0"),
        ({"d": 2.0}, "d=2.0"),
        ({"funnels": 0}, "funnels=0"),
        ({"deg": 0.5}, "deg=0.5"),
        ({"deg": float("inf")}, "deg=inf"),
        ({"half_width": -1}, "half_width=-1"),
        ({"param_seed": -1}, "param_seed=-1"),
        ({"paired": "yes"}, "paired='yes'"),
    ],
)
def test_invalid_param_raises(params: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Funnels(**params)


def test_potential_rejects_wrong_shape() -> None:
    with pytest.raises(ValueError, match=r"expected \(n, 2\)"):
        Funnels(d=2).potential(torch.zeros(3, 4, dtype=torch.float64))
