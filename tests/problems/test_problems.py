"""Tests of the problems with known W_p: sampling, true distances and errors."""

from __future__ import annotations

import math

import numpy as np
import ot
import pytest
import scipy.linalg
import torch
from scipy import integrate, optimize, stats

from otbench import problems
from otbench.problems.one_d import PAIRS, quantile_distance

# One small configuration per problem, and every one-d pair.
CASES = [
    ("translation", {"d": 3, "shift": 1.5}),
    ("translation", {"d": 2, "shift": 1.0, "paired": True}),
    ("gaussians", {"d": 3}),
    ("funnels", {"d": 3, "funnels": 5}),
    ("funnels", {"d": 2, "paired": True}),
    ("brenier", {"d": 3, "hidden": 16}),
    ("brenier", {"d": 2, "paired": True}),
] + [("one-d", {"pair": pair}) for pair in sorted(PAIRS)]
CASE_IDS = [f"{name}-{'-'.join(str(v) for v in params.values())}" for name, params in CASES]


# Module scope: problems are immutable, and funnels and brenier spend a few
# tenths of a second on their Monte Carlo true distance at construction.
@pytest.fixture(scope="module", params=CASES, ids=CASE_IDS)
def problem(request: pytest.FixtureRequest) -> problems.Problem:
    name, params = request.param
    return problems.get(name, **params)


def test_available_lists_all() -> None:
    assert problems.available() == ["brenier", "funnels", "gaussians", "one-d", "translation"]


def test_sample_shapes_and_dtype(problem: problems.Problem) -> None:
    x, y = problem.sample(7, seed=0, m=None if problem.params().get("paired") else 5)
    m = 7 if problem.params().get("paired") else 5
    assert x.shape == (7, problem.dim)
    assert y.shape == (m, problem.dim)
    assert x.dtype == torch.float64
    assert y.dtype == torch.float64
    assert x.device.type == "cpu"


def test_sample_same_seed_same_values(problem: problems.Problem) -> None:
    x1, y1 = problem.sample(20, seed=3)
    x2, y2 = problem.sample(20, seed=3)
    assert torch.equal(x1, x2)
    assert torch.equal(y1, y2)


def test_sample_new_seed_new_values(problem: problems.Problem) -> None:
    x1, y1 = problem.sample(20, seed=3)
    x2, y2 = problem.sample(20, seed=4)
    assert not torch.equal(x1, x2)
    assert not torch.equal(y1, y2)


def test_sample_ignores_global_rng(problem: problems.Problem) -> None:
    torch.manual_seed(1)
    np.random.seed(1)
    x1, _ = problem.sample(10, seed=0)
    torch.manual_seed(2)
    np.random.seed(2)
    x2, _ = problem.sample(10, seed=0)
    assert torch.equal(x1, x2)


def test_true_distance_positive_for_each_order(problem: problems.Problem) -> None:
    for p in problem.orders:
        value = problem.true_distance(p)
        assert isinstance(value, float)
        assert value > 0


def test_params_rebuild_same_problem(problem: problems.Problem) -> None:
    rebuilt = problems.get(problem.name, **problem.params())
    assert rebuilt.params() == problem.params()
    assert torch.equal(rebuilt.sample(5, seed=1)[1], problem.sample(5, seed=1)[1])


def test_true_distance_stderr_nonnegative(problem: problems.Problem) -> None:
    for p in problem.orders:
        stderr = problem.true_distance_stderr(p)
        assert isinstance(stderr, float)
        assert stderr >= 0


def test_transport_map_shape_or_error(problem: problems.Problem) -> None:
    x, _ = problem.sample(6, seed=0)
    if problem.has_transport_map:
        mapped = problem.transport_map(x)
        assert mapped.shape == x.shape
        assert mapped.dtype == x.dtype
    else:
        with pytest.raises(ValueError, match="no known transport map"):
            problem.transport_map(x)


def test_true_gradient_shape_for_each_order(problem: problems.Problem) -> None:
    if not problem.has_transport_map:
        pytest.skip(f"problem {problem.name!r} has no known transport map")
    x, _ = problem.sample(6, seed=0)
    for p in problem.orders:
        gradient = problem.true_gradient(x, p)
        assert gradient.shape == x.shape
        assert bool(torch.isfinite(gradient).all())


def test_transport_map_rejects_wrong_shape(problem: problems.Problem) -> None:
    if not problem.has_transport_map:
        pytest.skip(f"problem {problem.name!r} has no known transport map")
    with pytest.raises(ValueError, match=r"expected \(n, "):
        problem.transport_map(torch.zeros(4, problem.dim + 1, dtype=torch.float64))


@pytest.mark.parametrize(("name", "params"), [("translation", {}), ("gaussians", {}), ("one-d", {})])
def test_closed_form_stderr_is_zero(name: str, params: dict) -> None:
    problem = problems.get(name, **params)
    for p in problem.orders:
        assert problem.true_distance_stderr(p) == 0.0


# ---- translation ------------------------------------------------------------


def test_translation_transport_map_adds_shift() -> None:
    problem = problems.get("translation", d=4, shift=2.0)
    x, _ = problem.sample(10, seed=0)
    assert torch.allclose(problem.transport_map(x), x + problem.shift_vector, rtol=0, atol=1e-15)


def test_translation_paired_target_is_map() -> None:
    problem = problems.get("translation", d=3, shift=1.2, paired=True)
    x, y = problem.sample(10, seed=1)
    assert torch.allclose(problem.transport_map(x), y, rtol=0, atol=1e-15)


@pytest.mark.parametrize("p", [1, 2])
def test_translation_true_gradient_is_direction(p: int) -> None:
    problem = problems.get("translation", d=3, shift=2.0)
    x, _ = problem.sample(5, seed=2)
    # -dW_1/dx_i = t / (||t|| n); -dW_2/dx_i = t / (n W_2) with W_2 = ||t||.
    expected = problem.true_direction.expand(5, 3) / 5
    assert torch.allclose(problem.true_gradient(x, p), expected, rtol=0, atol=1e-15)


def test_translation_true_distance_is_shift() -> None:
    problem = problems.get("translation", d=5, shift=2.5)
    assert problem.true_distance(1) == 2.5
    assert problem.true_distance(2) == 2.5


def test_translation_direction_fixed_across_seeds() -> None:
    problem = problems.get("translation", d=4, shift=2.0, paired=True)
    for seed in (0, 1, 2):
        x, y = problem.sample(6, seed=seed)
        assert torch.allclose(y - x, problem.shift_vector.expand(6, 4), atol=1e-12)


def test_translation_direction_unit_norm() -> None:
    problem = problems.get("translation", d=6, shift=3.0)
    assert math.isclose(float(problem.true_direction.norm()), 1.0, abs_tol=1e-12)
    assert math.isclose(float(problem.shift_vector.norm()), 3.0, abs_tol=1e-12)


def test_translation_direction_same_for_any_shift() -> None:
    short = problems.get("translation", d=3, shift=0.5)
    long = problems.get("translation", d=3, shift=4.0)
    assert torch.equal(short.true_direction, long.true_direction)


@pytest.mark.parametrize("p", [1, 2])
def test_translation_paired_emd_equals_shift(p: int) -> None:
    problem = problems.get("translation", d=3, shift=1.7, paired=True)
    x, y = problem.sample(60, seed=5)
    cost = ot.dist(x.numpy(), y.numpy(), metric="sqeuclidean" if p == 2 else "euclidean")
    weights = np.full(60, 1 / 60)
    value = ot.emd2(weights, weights, cost, numItermax=10**6)
    assert abs(value - 1.7**p) < 1e-9


def test_translation_unpaired_emd_near_shift() -> None:
    problem = problems.get("translation", d=2, shift=3.0)
    x, y = problem.sample(400, seed=0)
    weights = np.full(400, 1 / 400)
    value = math.sqrt(ot.emd2(weights, weights, ot.dist(x.numpy(), y.numpy()), numItermax=10**6))
    # For seeds 0 to 4 the empirical W_2 of 400 points per side was within 0.09 of 3.
    assert abs(value - 3.0) < 0.2


def test_translation_paired_rejects_other_m() -> None:
    problem = problems.get("translation", paired=True)
    with pytest.raises(ValueError, match="m=5"):
        problem.sample(4, seed=0, m=5)


# ---- gaussians --------------------------------------------------------------


def _bures_wasserstein_scipy(m1, m2, s1, s2) -> float:
    root = scipy.linalg.sqrtm(s1)
    cross = scipy.linalg.sqrtm(root @ s2 @ root)
    squared = np.sum((m1 - m2) ** 2) + np.trace(s1 + s2 - 2 * np.real(cross))
    return math.sqrt(squared)


@pytest.mark.parametrize("d", [1, 2, 5])
@pytest.mark.parametrize("param_seed", [0, 1])
def test_gaussians_matches_scipy_sqrtm(d: int, param_seed: int) -> None:
    problem = problems.get("gaussians", d=d, param_seed=param_seed)
    (m1, m2), (s1, s2) = problem.means, problem.covariances
    expected = _bures_wasserstein_scipy(m1, m2, s1, s2)
    assert abs(problem.true_distance(2) - expected) < 1e-9


def test_gaussians_one_d_closed_form() -> None:
    problem = problems.get("gaussians", d=1, param_seed=3)
    (m1, m2), (s1, s2) = problem.means, problem.covariances
    expected = math.sqrt((m1[0] - m2[0]) ** 2 + (math.sqrt(s1[0, 0]) - math.sqrt(s2[0, 0])) ** 2)
    assert abs(problem.true_distance(2) - expected) < 1e-12


def test_gaussians_samples_fit_moments() -> None:
    problem = problems.get("gaussians", d=2)
    x, y = problem.sample(20000, seed=0)
    (m1, m2), (s1, s2) = problem.means, problem.covariances
    assert np.allclose(x.mean(0).numpy(), m1, atol=0.05)
    assert np.allclose(y.mean(0).numpy(), m2, atol=0.05)
    # The sample variance of 20,000 points has a relative standard error of 1%.
    assert np.allclose(np.cov(x.numpy(), rowvar=False), s1, rtol=0.05, atol=0.02)
    assert np.allclose(np.cov(y.numpy(), rowvar=False), s2, rtol=0.05, atol=0.02)


def test_gaussians_covariances_positive_definite() -> None:
    problem = problems.get("gaussians", d=8, param_seed=2)
    for covariance in problem.covariances:
        assert np.allclose(covariance, covariance.T)
        assert np.linalg.eigvalsh(covariance).min() >= 0.1 - 1e-12


def test_gaussians_param_seed_changes_pair() -> None:
    first = problems.get("gaussians", d=2, param_seed=0)
    second = problems.get("gaussians", d=2, param_seed=1)
    assert first.true_distance(2) != second.true_distance(2)


def test_gaussians_transport_map_matches_sqrtm() -> None:
    problem = problems.get("gaussians", d=4, param_seed=1)
    (m1, m2), (s1, s2) = problem.means, problem.covariances
    root = np.real(scipy.linalg.sqrtm(s1))
    root_inverse = np.linalg.inv(root)
    linear = root_inverse @ np.real(scipy.linalg.sqrtm(root @ s2 @ root)) @ root_inverse
    x, _ = problem.sample(20, seed=0)
    expected = m2 + (x.numpy() - m1) @ linear.T
    assert np.allclose(problem.transport_map(x).numpy(), expected, rtol=0, atol=1e-9)


def test_gaussians_transport_map_reaches_target_moments() -> None:
    problem = problems.get("gaussians", d=3)
    x, _ = problem.sample(20000, seed=1)
    mapped = problem.transport_map(x).numpy()
    _, mean = problem.means
    _, covariance = problem.covariances
    # Same Monte Carlo tolerances as for the samples themselves, above.
    assert np.allclose(mapped.mean(axis=0), mean, atol=0.05)
    assert np.allclose(np.cov(mapped, rowvar=False), covariance, rtol=0.05, atol=0.02)


def test_gaussians_transport_cost_is_w2_squared() -> None:
    problem = problems.get("gaussians", d=3)
    x, _ = problem.sample(20000, seed=2)
    squared = (problem.transport_map(x) - x).square().sum(dim=1)
    stderr = float(squared.std()) / math.sqrt(len(squared))
    assert abs(float(squared.mean()) - problem.true_distance(2) ** 2) < 4 * stderr


def test_gaussians_transport_map_is_monotone() -> None:
    # The map is the gradient of a convex quadratic: its matrix is symmetric
    # positive definite, so <T(a) - T(b), a - b> > 0 for a != b.
    problem = problems.get("gaussians", d=5, param_seed=2)
    a, b = problem.sample(200, seed=3)
    inner = ((problem.transport_map(a) - problem.transport_map(b)) * (a - b)).sum(dim=1)
    assert bool((inner > 0).all())


# ---- one-d ------------------------------------------------------------------


def test_one_d_normal_normal_closed_form() -> None:
    # N(0, 1) against N(1, 2^2): the monotone map is y = 1 + 2x, so x - y = -(1 + Z).
    problem = problems.get("one-d", pair="normal-normal")
    w2_expected = math.sqrt(1.0**2 + (1.0 - 2.0) ** 2)
    # E|1 + Z| is the mean of a folded normal with mu = 1, sigma = 1.
    w1_expected = math.sqrt(2 / math.pi) * math.exp(-0.5) + 1.0 - 2 * stats.norm.cdf(-1.0)
    assert abs(problem.true_distance(2) - w2_expected) < 1e-8
    assert abs(problem.true_distance(1) - w1_expected) < 1e-8


def test_one_d_uniform_uniform_closed_form() -> None:
    # U(0, 1) against U(0.5, 2.5): the quantile gap is 0.5 + u on [0, 1].
    problem = problems.get("one-d", pair="uniform-uniform")
    assert abs(problem.true_distance(1) - 1.0) < 1e-10
    assert abs(problem.true_distance(2) - math.sqrt(0.25 + 0.5 + 1 / 3)) < 1e-10


@pytest.mark.parametrize("pair", sorted(PAIRS))
def test_one_d_w1_matches_cdf_integral(pair: str) -> None:
    # W_1 = integral |F(t) - G(t)| dt, split where |F - G| has a kink: at the
    # ends of each support and where the two CDFs cross.
    first, second = PAIRS[pair]()
    ends = {float(e) for e in (*first.support(), *second.support()) if np.isfinite(e)}
    grid = np.linspace(-20.0, 20.0, 400_001)
    gap = first.cdf(grid) - second.cdf(grid)
    crossings = {
        optimize.brentq(lambda t: first.cdf(t) - second.cdf(t), grid[i], grid[i + 1], xtol=1e-14)
        for i in np.flatnonzero(gap[:-1] * gap[1:] < 0)
    }
    breaks = [-np.inf, *sorted(ends | crossings | {0.0}), np.inf]
    expected = 0.0
    for low, high in zip(breaks[:-1], breaks[1:]):
        value, _ = integrate.quad(
            lambda t: abs(first.cdf(t) - second.cdf(t)), low, high, epsabs=1e-12, epsrel=1e-12, limit=500
        )
        expected += value
    assert abs(problems.get("one-d", pair=pair).true_distance(1) - expected) < 1e-8


@pytest.mark.parametrize("pair", sorted(PAIRS))
@pytest.mark.parametrize("p", [1, 2])
def test_one_d_matches_pot_on_large_samples(pair: str, p: int) -> None:
    problem = problems.get("one-d", pair=pair)
    estimates = []
    for seed in range(4):
        x, y = problem.sample(50_000, seed=seed)
        value = ot.wasserstein_1d(x[:, 0].numpy(), y[:, 0].numpy(), p=p)
        estimates.append(float(value) ** (1 / p))
    mean = float(np.mean(estimates))
    standard_error = float(np.std(estimates, ddof=1)) / 2
    # Allow 4 standard errors of the mean over seeds plus 2e-3 for the bias of
    # the empirical W_p at n = 50,000.
    assert abs(mean - problem.true_distance(p)) < 4 * standard_error + 2e-3


def test_quantile_distance_identical_is_zero() -> None:
    assert quantile_distance(stats.norm(), stats.norm(), 2) == 0.0


# ---- errors -----------------------------------------------------------------


def test_get_unknown_name_lists_available() -> None:
    with pytest.raises(ValueError, match="available: brenier, funnels, gaussians, one-d, translation"):
        problems.get("circle")


def test_get_unknown_param_lists_allowed() -> None:
    with pytest.raises(ValueError, match=r"unknown parameter\(s\) \['radius'\]; allowed: \['d', 'shift', 'paired'\]"):
        problems.get("translation", radius=2)


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("translation", {"d": 0}, "d=0"),
        ("translation", {"d": 2.5}, "d=2.5"),
        ("translation", {"shift": -1.0}, "shift=-1.0"),
        ("translation", {"shift": 0.0}, "shift=0.0"),
        ("translation", {"shift": float("nan")}, "shift=nan"),
        ("translation", {"paired": 1}, "paired=1"),
        ("gaussians", {"d": -2}, "d=-2"),
        ("gaussians", {"param_seed": -1}, "param_seed=-1"),
        ("gaussians", {"param_seed": "a"}, "param_seed='a'"),
        ("one-d", {"pair": "normal-cauchy"}, "pair='normal-cauchy'"),
    ],
)
def test_invalid_param_raises(name: str, params: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        problems.get(name, **params)


@pytest.mark.parametrize("p", [0, 3, 1.5, True, "2"])
def test_true_distance_bad_order_raises(problem: problems.Problem, p: object) -> None:
    with pytest.raises(ValueError, match="p="):
        problem.true_distance(p)  # type: ignore[arg-type]


def test_gaussians_order_one_raises() -> None:
    with pytest.raises(ValueError, match=r"only for p in \[2\]"):
        problems.get("gaussians").true_distance(1)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n": 0, "seed": 0}, "n=0"),
        ({"n": 2.0, "seed": 0}, "n=2.0"),
        ({"n": 3, "seed": 0, "m": 0}, "m=0"),
        ({"n": 3, "seed": -1}, "seed=-1"),
        ({"n": 3, "seed": 1.5}, "seed=1.5"),
    ],
)
def test_sample_bad_arguments_raise(kwargs: dict, message: str) -> None:
    problem = problems.get("translation")
    with pytest.raises(ValueError, match=message):
        problem.sample(**kwargs)
