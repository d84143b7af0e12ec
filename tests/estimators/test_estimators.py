"""Estimators against known values, each other, and the input checks."""

from __future__ import annotations

import math

import numpy as np
import ot
import pytest
import torch

import otbench
from otbench.estimators.base import SolveResult


def gaussian_pair(n: int, d: int, shift: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=generator, dtype=torch.float64)
    y = torch.randn(n, d, generator=generator, dtype=torch.float64)
    y[:, 0] += shift
    return x, y


# Known values.


@pytest.mark.parametrize("p", [1, 2])
def test_exact_matches_quantile_formula(p: int) -> None:
    rng = np.random.default_rng(0)
    u, v = rng.normal(size=300), rng.exponential(size=300)
    expected = ot.wasserstein_1d(u, v, p=p) ** (1 / p)
    x, y = torch.from_numpy(u).reshape(-1, 1), torch.from_numpy(v).reshape(-1, 1)
    value = otbench.estimator("exact", p=p)(x, y)
    assert float(value) == pytest.approx(float(expected), rel=1e-10)


@pytest.mark.parametrize("p", [1, 2])
def test_exact_paired_translation(p: int) -> None:
    x, _ = gaussian_pair(50, 3, 0.0, seed=1)
    t = torch.tensor([0.3, -1.2, 0.4], dtype=torch.float64)
    value = otbench.estimator("exact", p=p)(x, x + t)
    assert float(value) == pytest.approx(float(t.norm()), rel=1e-10)


def test_exact_weighted_matches_pot() -> None:
    rng = np.random.default_rng(2)
    xs, ys = rng.normal(size=(7, 2)), rng.normal(size=(5, 2))
    a, b = rng.random(7), rng.random(5)
    a, b = a / a.sum(), b / b.sum()
    expected = math.sqrt(ot.emd2(a, b, ot.dist(xs, ys)))
    value = otbench.estimator("exact", p=2)(
        torch.from_numpy(xs), torch.from_numpy(ys), torch.from_numpy(a), torch.from_numpy(b)
    )
    assert float(value) == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize("p", [1, 2])
def test_sinkhorn_tends_to_exact(p: int) -> None:
    x, y = gaussian_pair(200, 2, 1.0, seed=3)
    exact = float(otbench.estimator("exact", p=p)(x, y))
    errors = []
    for blur in (0.5, 0.1, 0.01):
        value = float(otbench.estimator("sinkhorn", p=p, blur=blur, scaling=0.95)(x, y))
        errors.append(abs(value - exact) / exact)
    # The entropic bias shrinks like eps = blur^p, so more slowly for p = 1.
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < (0.03 if p == 1 else 0.001)


def test_sinkhorn_matches_geomloss_convention() -> None:
    from geomloss import SamplesLoss

    x, y = gaussian_pair(100, 2, 1.0, seed=4)
    blur = 0.1
    raw = SamplesLoss("sinkhorn", p=2, blur=blur, scaling=0.9, backend="tensorized")(x, y)
    # GeomLoss's cost is ||x - y||^2 / 2 with eps = blur^2 in its units, so it
    # returns S_eps / 2 for eps = 2 blur^2 in units of ||x - y||^2.
    value = otbench.estimator("sinkhorn", p=2, eps=2 * blur**2, scaling=0.9)(x, y)
    assert float(value) ** 2 == pytest.approx(2 * float(raw), rel=1e-3)


def test_sinkhorn_blur_and_eps_agree() -> None:
    x, y = gaussian_pair(60, 2, 1.0, seed=5)
    by_blur = otbench.estimator("sinkhorn", p=2, blur=0.2)(x, y)
    by_eps = otbench.estimator("sinkhorn", p=2, eps=0.04)(x, y)
    assert float(by_blur) == pytest.approx(float(by_eps), rel=1e-12)


@pytest.mark.parametrize("name", ["exact", "sinkhorn"])
@pytest.mark.parametrize("p", [1, 2])
def test_symmetry(name: str, p: int) -> None:
    x, y = gaussian_pair(40, 2, 0.7, seed=6)
    est = otbench.estimator(name, p=p)
    assert float(est(x, y)) == pytest.approx(float(est(y, x)), rel=1e-6)


@pytest.mark.parametrize("name", ["exact", "sinkhorn"])
def test_scaling_property(name: str) -> None:
    x, y = gaussian_pair(40, 2, 0.7, seed=7)
    params = {"blur": 0.05} if name == "sinkhorn" else {}
    scaled = {"blur": 0.15} if name == "sinkhorn" else {}
    base = float(otbench.estimator(name, p=2, **params)(x, y))
    tripled = float(otbench.estimator(name, p=2, **scaled)(3 * x, 3 * y))
    assert tripled == pytest.approx(3 * base, rel=1e-4)


@pytest.mark.slow
def test_gp_critic_approaches_w1() -> None:
    torch.manual_seed(0)
    x, y = gaussian_pair(256, 2, 2.0, seed=8)
    x, y = x.float(), y.float()
    exact = float(otbench.estimator("exact", p=1)(x, y))
    est = otbench.estimator("critic-gp", n_critic=50, lr=1e-3)
    for _ in range(8):
        value = float(est(x, y))
    # The penalty keeps the critic only softly 1-Lipschitz, so it may overshoot
    # the empirical W_1 by a few tenths on 256 samples.
    assert value == pytest.approx(exact, rel=0.25)


def test_critic_on_images() -> None:
    torch.manual_seed(0)
    x, y = torch.rand(16, 1, 8, 8), torch.rand(16, 1, 8, 8)
    est = otbench.estimator("critic-gp", n_critic=2)
    value = est(x.requires_grad_(True), y)
    value.backward()
    assert isinstance(est.critic[0], torch.nn.Conv2d)
    assert x.grad is not None
    assert x.grad.shape == (16, 1, 8, 8)


@pytest.mark.parametrize("name", ["exact", "sinkhorn"])
def test_images_flattened_for_solvers(name: str) -> None:
    x, y = torch.zeros(3, 1, 2, 2), torch.ones(3, 1, 2, 2)
    assert float(otbench.estimator(name, p=2, **({"blur": 0.01} if name == "sinkhorn" else {}))(x, y)) == pytest.approx(2.0, rel=1e-4)


# The contract.


@pytest.mark.parametrize("name", otbench.available_estimators())
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_contract_dtype_and_last_solve(name: str, dtype: torch.dtype) -> None:
    torch.manual_seed(0)
    x, y = gaussian_pair(32, 2, 1.0, seed=9)
    x, y = x.to(dtype).requires_grad_(True), y.to(torch.float64)
    est = otbench.estimator(name, p=1)
    value = est(x, y)
    assert value.dim() == 0
    assert value.dtype == dtype
    assert isinstance(est.last_solve, SolveResult)
    assert est.last_solve.value == pytest.approx(float(value.detach()))
    assert est.last_solve.seconds > 0
    value.backward()
    assert x.grad is not None
    assert bool(torch.isfinite(x.grad).all())


def test_sinkhorn_reports_iterations() -> None:
    x, y = gaussian_pair(32, 2, 1.0, seed=10)
    est = otbench.estimator("sinkhorn", p=2)
    est(x, y)
    assert est.last_solve.iterations > 10
    assert est.last_solve.marginal_error is not None


def test_sinkhorn_float32_nonnegative() -> None:
    x = torch.randn(100, 2)
    value = otbench.estimator("sinkhorn", p=2)(x, x.clone())
    assert float(value) == 0.0


def test_critic_n_critic_steps_counted() -> None:
    est = otbench.estimator("critic-gp", n_critic=3)
    x, y = torch.randn(8, 2), torch.randn(8, 2)
    est(x, y)
    est(x, y)
    assert est.last_solve.iterations == 3
    assert est.total_steps == 6


def test_registry_lists_estimators() -> None:
    assert otbench.available_estimators() == [
        "critic-clip", "critic-ctransform", "critic-gp", "critic-lp", "critic-sn",
        "exact", "max-sliced", "sinkhorn", "sinkhorn-entropic", "sliced",
    ]
    assert otbench.capabilities("exact").exact is True
    assert otbench.capabilities("critic-gp").orders == (1,)
    assert isinstance(otbench.estimator("exact"), torch.nn.Module)


# Input checks, one per documented error.


def test_unknown_estimator_lists_available() -> None:
    with pytest.raises(ValueError, match=r"unknown estimator 'wgan'; available: critic-clip, critic-ctransform, critic-gp, .*, sliced"):
        otbench.estimator("wgan")


def test_unknown_parameter_listed() -> None:
    with pytest.raises(ValueError, match=r"unknown parameter\(s\) \['blurr'\]"):
        otbench.estimator("sinkhorn", blurr=0.1)


@pytest.mark.parametrize("name", ["critic-clip", "critic-gp"])
def test_critic_rejects_p2(name: str) -> None:
    with pytest.raises(ValueError, match=r"p=2 is not supported.*W_1 only"):
        otbench.estimator(name, p=2)


@pytest.mark.parametrize(
    "name", [name for name in otbench.available_estimators() if otbench.capabilities(name).orders == (1, 2)]
)
def test_unsupported_order(name: str) -> None:
    with pytest.raises(ValueError, match=r"p=3 is not supported.*\[1, 2\]"):
        otbench.estimator(name, p=3)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
@pytest.mark.parametrize("name", otbench.available_estimators())
def test_non_finite_samples(name: str, bad: float) -> None:
    x = torch.zeros(4, 2)
    x[1, 0] = bad
    with pytest.raises(ValueError, match=r"x contains 1 NaN or inf"):
        otbench.estimator(name)(x, torch.zeros(4, 2))
    with pytest.raises(ValueError, match=r"y contains 1 NaN or inf"):
        otbench.estimator(name)(torch.zeros(4, 2), x)


def test_wrong_number_of_dimensions() -> None:
    with pytest.raises(ValueError, match=r"x has shape \(2, 2, 2\)"):
        otbench.estimator("exact")(torch.zeros(2, 2, 2), torch.zeros(2, 2))


@pytest.mark.parametrize("dtype", [torch.long, torch.float16, torch.bfloat16, torch.complex64])
@pytest.mark.parametrize("name", otbench.available_estimators())
def test_unsupported_dtype_rejected(name: str, dtype: torch.dtype) -> None:
    with pytest.raises(ValueError, match=r"x has dtype .*; expected torch.float32 or torch.float64"):
        otbench.estimator(name, p=1)(torch.zeros(2, 2, dtype=dtype), torch.zeros(2, 2))


def test_non_tensor_rejected() -> None:
    with pytest.raises(ValueError, match=r"x must be a torch.Tensor"):
        otbench.estimator("exact")([[0.0]], torch.zeros(1, 1))


def test_negative_weights() -> None:
    a = torch.tensor([1.5, -0.5])
    with pytest.raises(ValueError, match=r"a has negative entries"):
        otbench.estimator("exact")(torch.zeros(2, 1), torch.ones(2, 1), a=a)


def test_unequal_mass() -> None:
    b = torch.tensor([0.5, 0.6])
    with pytest.raises(ValueError, match=r"b sums to 1\.1; expected probability weights summing to 1"):
        otbench.estimator("sinkhorn")(torch.zeros(2, 1), torch.ones(2, 1), b=b)


def test_weights_rejected_by_critics() -> None:
    with pytest.raises(ValueError, match=r"does not support weights"):
        otbench.estimator("critic-gp")(torch.zeros(2, 1), torch.ones(2, 1), a=torch.tensor([0.5, 0.5]))


@pytest.mark.parametrize(
    "name, params, pattern",
    [
        ("sinkhorn", {"blur": -1.0}, r"blur=-1\.0 is invalid"),
        ("sinkhorn", {"blur": 0.1, "eps": 0.01}, r"were both given"),
        ("sinkhorn", {"scaling": 1.5}, r"scaling=1\.5 is invalid"),
        ("exact", {"max_iter": 0}, r"max_iter=0 is invalid"),
        ("critic-gp", {"n_critic": 0}, r"n_critic=0 is invalid"),
        ("critic-gp", {"betas": (0.0, 1.5)}, r"betas=\(0\.0, 1\.5\) is invalid"),
        ("critic-gp", {"gp_weight": -1.0}, r"gp_weight=-1\.0 is invalid"),
        ("critic-clip", {"clip_value": 0.0}, r"clip_value=0\.0 is invalid"),
        ("critic-clip", {"lr": float("nan")}, r"lr=nan is invalid"),
    ],
)
def test_invalid_parameters(name: str, params: dict, pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        otbench.estimator(name, **params)


def test_exact_truncated_solve_warns() -> None:
    from otbench.estimators.base import ConvergenceWarning

    x, y = gaussian_pair(30, 2, 1.0, seed=11)
    exact = float(otbench.estimator("exact", p=2)(x, y))
    est = otbench.estimator("exact", p=2, max_iter=3)
    with pytest.warns(ConvergenceWarning, match=r"max_iter=3 before optimality"):
        value = float(est(x, y))
    assert est.last_solve.converged is False
    assert value != pytest.approx(exact)


def test_exact_default_cap_grows_with_n() -> None:
    x, y = gaussian_pair(400, 2, 1.0, seed=12)
    est = otbench.estimator("exact", p=1)
    est(x, y)
    assert est.last_solve.converged is True


def test_critic_output_shape_checked() -> None:
    est = otbench.estimator("critic-gp", critic=torch.nn.Linear(2, 3))
    with pytest.raises(ValueError, match=r"critic maps a batch of shape \(2, 2\) to \(2, 3\); expected one score"):
        est(torch.randn(8, 2), torch.randn(8, 2))


@pytest.mark.parametrize("name", ["critic-clip", "critic-gp"])
def test_critic_has_no_convergence_flag(name: str) -> None:
    est = otbench.estimator(name, n_critic=1)
    est(torch.randn(8, 2), torch.randn(8, 2))
    assert est.last_solve.converged is None


def test_meta_device_rejected() -> None:
    with pytest.raises(ValueError, match=r"x is on the meta device"):
        otbench.estimator("exact")(torch.zeros(2, 2, device="meta"), torch.zeros(2, 2))
