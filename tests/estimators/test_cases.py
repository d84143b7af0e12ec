"""Failure cases reported by users of OT losses, each with its right value.

Costs in the case descriptions are W_p^p; otbench returns W_p, so the tests
compare squares or roots where needed.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from scipy.special import logsumexp
from torch import nn

import otbench
from otbench.estimators import MemoryBudgetError
from otbench.estimators.base import ConvergenceWarning, pairwise_cost
from otbench.estimators.critics import ClipCritic, GPCritic, gradient_penalty
from otbench.estimators.sinkhorn import sinkhorn_plan

# Every registered estimator at every order it supports.
ALL_CONFIGS = [
    (name, p) for name in otbench.available_estimators() for p in otbench.capabilities(name).orders
]
# Estimators without an inner-loop network: their value is a deterministic function of the samples.
PLUG_IN = ["exact", "sinkhorn", "sinkhorn-entropic", "sliced", "max-sliced"]


def column(values: list[float], dtype: torch.dtype = torch.float64) -> torch.Tensor:
    return torch.tensor(values, dtype=dtype).reshape(-1, 1)


def entropic_ot_reference(cost: np.ndarray, a: np.ndarray, b: np.ndarray, eps: float) -> float:
    """Return OT_eps by a plain log-domain Sinkhorn loop run to 1e-14 (independent of GeomLoss)."""
    f, g = np.zeros(len(a)), np.zeros(len(b))
    for _ in range(200_000):
        f = -eps * logsumexp(np.log(b)[None, :] + (g[None, :] - cost) / eps, axis=1)
        g_new = -eps * logsumexp(np.log(a)[:, None] + (f[:, None] - cost) / eps, axis=0)
        if np.abs(g_new - g).max() < 1e-14:
            g = g_new
            break
        g = g_new
    return float(a @ f + b @ g)


# Sinkhorn at small eps stays finite and never drops below the LP.


@pytest.mark.parametrize(
    "eps, transport",
    [(1.0, 100.26894142), (0.1, 100.0000453979), (0.01, 100.0)],
)
def test_entropic_plan_transport_cost(eps: float, transport: float) -> None:
    x, y = column([0.0, 1.0]), column([10.0, 11.0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        plan = sinkhorn_plan(x, y, p=2, eps=eps, tol=1e-6)
    value = float((plan * pairwise_cost(x, y, 2)).sum())
    assert math.isfinite(value)
    assert value == pytest.approx(transport, rel=1e-6)
    assert value >= 100.0 - 1e-9


def test_divergence_matches_reference() -> None:
    eps = 1.0
    x, y = column([0.0, 1.0]), column([10.0, 11.0])
    est = otbench.estimator("sinkhorn", p=2, eps=eps, tol=1e-9, max_iter=200_000)
    value = float(est(x, y)) ** 2
    xn, yn = x.numpy(), y.numpy()
    half = np.full(2, 0.5)
    reference = (
        entropic_ot_reference((xn - yn.T) ** 2, half, half, eps)
        - entropic_ot_reference((xn - xn.T) ** 2, half, half, eps) / 2
        - entropic_ot_reference((yn - yn.T) ** 2, half, half, eps) / 2
    )
    assert math.isfinite(value)
    assert value == pytest.approx(reference, rel=1e-6)
    assert est.last_solve is not None
    assert est.last_solve.converged


@pytest.mark.parametrize("eps", [0.1, 0.01, 1e-4])
def test_divergence_small_eps(eps: float) -> None:
    x, y = column([0.0, 1.0]), column([10.0, 11.0])
    est = otbench.estimator("sinkhorn", p=2, eps=eps)
    value = float(est(x, y))
    assert math.isfinite(value)
    assert value == pytest.approx(10.0, rel=1e-5)


def test_truncated_solve_warns() -> None:
    torch.manual_seed(0)
    x, y = torch.randn(64, 2), torch.randn(64, 2) + 1.0
    est = otbench.estimator("sinkhorn", p=2, blur=0.01, scaling=0.5, tol=1e-6)
    with pytest.warns(ConvergenceWarning, match="scaling closer to 1") as record:
        value = est(x, y)
    assert record[0].filename == __file__
    assert est.last_solve is not None
    assert est.last_solve.converged is False
    assert est.last_solve.marginal_error > 1e-6
    assert float(value) > 0.0


def test_plan_iteration_cap_warns() -> None:
    x, y = column([0.0, 1.0]), column([10.0, 11.0])
    with pytest.warns(ConvergenceWarning, match="Raise max_iter"):
        sinkhorn_plan(x, y, p=2, eps=0.1, tol=1e-12, max_iter=200)


# Zero-mass points.


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name, params", [("exact", {}), ("sinkhorn", {"blur": 0.05}), ("sinkhorn", {"blur": 1.0})])
def test_zero_mass_points(name: str, params: dict, dtype: torch.dtype) -> None:
    corners = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], dtype=dtype)
    x = corners.clone().requires_grad_(True)
    y = corners.clone().requires_grad_(True)
    a = torch.tensor([0.0, 1.0, 0.0, 0.0], dtype=dtype, requires_grad=True)
    b = torch.tensor([1.0, 0.0, 0.0, 0.0], dtype=dtype, requires_grad=True)
    value = otbench.estimator(name, p=1, **params)(x, y, a, b)
    value.backward()
    assert float(value) == pytest.approx(1.0, abs=1e-5)
    for tensor in (x, y, a, b):
        assert tensor.grad is not None
        assert bool(torch.isfinite(tensor.grad).all())


# Envelope-theorem gradients of the LP.


def test_exact_gradient_identity_plan() -> None:
    x = column([0.0, 1.0]).requires_grad_(True)
    y = column([0.2, 1.5]).requires_grad_(True)
    squared = otbench.estimator("exact", p=2)(x, y) ** 2
    squared.backward()
    assert float(squared) == pytest.approx(0.145, abs=1e-12)
    assert x.grad.flatten().tolist() == pytest.approx([-0.2, -0.5], abs=1e-12)
    assert y.grad.flatten().tolist() == pytest.approx([0.2, 0.5], abs=1e-12)


def test_exact_gradient_finite_differences() -> None:
    est = otbench.estimator("exact", p=2)
    x, y = column([0.0, 1.0]), column([0.2, 1.5])
    h = 1e-6
    for i, expected in enumerate([-0.2, -0.5]):
        up, down = x.clone(), x.clone()
        up[i] += h
        down[i] -= h
        numeric = (float(est(up, y)) ** 2 - float(est(down, y)) ** 2) / (2 * h)
        assert numeric == pytest.approx(expected, abs=1e-6)


def test_exact_duplicate_points() -> None:
    x = column([0.0, 0.0]).requires_grad_(True)
    y = column([-1.0, 1.0])
    squared = otbench.estimator("exact", p=2)(x, y) ** 2
    squared.backward()
    assert float(squared) == pytest.approx(1.0, abs=1e-12)
    assert bool(torch.isfinite(x.grad).all())
    assert float(x.grad.sum()) == pytest.approx(0.0, abs=1e-12)


# One point, identical points, empty input.


@pytest.mark.parametrize("name, p", ALL_CONFIGS)
@pytest.mark.parametrize(
    "points",
    [[[1.0]], [[1.0, 2.0]], [[1.0]] * 5],
    ids=["one-point-1d", "one-point-2d", "five-copies"],
)
def test_identical_inputs_give_zero(name: str, p: int, points: list) -> None:
    torch.manual_seed(0)
    x = torch.tensor(points).requires_grad_(True)
    y = torch.tensor(points)
    value = otbench.estimator(name, p=p)(x, y)
    value.backward()
    assert float(value) == 0.0
    assert torch.equal(x.grad, torch.zeros_like(x))


@pytest.mark.parametrize("p", [1, 2])
@pytest.mark.parametrize("name", PLUG_IN)
def test_single_diracs(name: str, p: int) -> None:
    value = otbench.estimator(name, p=p)(column([0.0]), column([3.0]))
    assert float(value) == pytest.approx(3.0, abs=1e-9)


@pytest.mark.parametrize("name", otbench.available_estimators())
def test_empty_input_rejected(name: str) -> None:
    with pytest.raises(ValueError, match=r"x is empty"):
        otbench.estimator(name, p=1)(torch.zeros(0, 2), torch.ones(3, 2))


# Shapes and layouts.


def test_weight_length_mismatch() -> None:
    x, y = torch.zeros(4, 1), torch.ones(4, 1)
    with pytest.raises(ValueError, match=r"a has length 3 but x has 4 samples"):
        otbench.estimator("exact")(x, y, a=torch.full((3,), 1 / 3))


@pytest.mark.parametrize("name, p", [("exact", 1), ("exact", 2), ("sinkhorn", 1), ("sinkhorn", 2)])
def test_columns_versus_one_point(name: str, p: int) -> None:
    u = torch.tensor([0.0, 1.0, 3.0], dtype=torch.float64)
    v = torch.tensor([5.0, 6.0, 8.0], dtype=torch.float64)
    est = otbench.estimator(name, p=p, **({"blur": 1e-3} if name == "sinkhorn" else {}))
    tolerance = 1e-9 if name == "exact" else 1e-3
    assert float(est(u.reshape(3, 1), v.reshape(3, 1))) == pytest.approx(5.0, rel=tolerance)
    assert float(est(u.reshape(1, 3), v.reshape(1, 3))) == pytest.approx(math.sqrt(75), rel=tolerance)


@pytest.mark.parametrize("name", otbench.available_estimators())
def test_bare_vector_rejected(name: str) -> None:
    with pytest.raises(ValueError, match=r"reshape\(-1, 1\)"):
        otbench.estimator(name, p=1)(torch.tensor([0.0, 1.0, 3.0]), torch.tensor([[5.0], [6.0], [8.0]]))


@pytest.mark.parametrize("name", otbench.available_estimators())
def test_feature_mismatch(name: str) -> None:
    with pytest.raises(ValueError, match=r"x has shape \(5, 2\) and y has shape \(5, 3\)"):
        otbench.estimator(name, p=1)(torch.zeros(5, 2), torch.zeros(5, 3))


# The gradient penalty on image batches.


def test_interpolation_factor_per_example() -> None:
    torch.manual_seed(0)
    real, fake = torch.ones(8, 3, 8, 8), -torch.ones(8, 3, 8, 8)
    seen: list[torch.Tensor] = []

    class Recorder(nn.Module):
        def forward(self, batch: torch.Tensor) -> torch.Tensor:
            seen.append(batch.detach().clone())
            return batch.sum(dim=(1, 2, 3))

    gradient_penalty(Recorder(), real, fake)
    factor = (seen[0] - fake) / (real - fake)
    per_example = factor.flatten(start_dim=1)
    assert torch.allclose(per_example, per_example[:, :1].expand_as(per_example))
    assert not torch.allclose(per_example[:, 0], per_example[0, 0].expand(8))


def test_linear_critic_penalty_is_zero() -> None:
    torch.manual_seed(0)

    class Linear(nn.Module):
        def forward(self, batch: torch.Tensor) -> torch.Tensor:
            return batch.sum(dim=(1, 2, 3)) / 8.0

    real, fake = torch.ones(2, 1, 8, 8), -torch.ones(2, 1, 8, 8)
    penalty = gradient_penalty(Linear(), real, fake, gp_weight=10.0)
    assert float(penalty) == pytest.approx(0.0, abs=1e-10)


# A critic whose input gradient is identically 0.


def test_penalty_with_zero_gradient() -> None:
    torch.manual_seed(0)
    critic = nn.Sequential(nn.Linear(4, 1), nn.ReLU())
    with torch.no_grad():
        critic[0].weight.fill_(0.1)
        critic[0].bias.fill_(-100.0)
    real, fake = torch.rand(16, 4) * 2 - 1, torch.rand(16, 4) * 2 - 1
    penalty = gradient_penalty(critic, real, fake, gp_weight=10.0)
    penalty.backward()
    assert float(penalty) == pytest.approx(10.0, abs=1e-12)
    for param in critic.parameters():
        assert param.grad is not None
        assert bool(torch.isfinite(param.grad).all())


# Batch normalisation inside a gradient-penalty critic.


def test_batch_norm_rejected() -> None:
    critic = nn.Sequential(nn.BatchNorm1d(3), nn.Linear(3, 1))
    with pytest.raises(ValueError, match=r"'0' \(BatchNorm1d\).*LayerNorm"):
        GPCritic(critic=critic)


def test_batch_norm_opt_out_warns() -> None:
    critic = nn.Sequential(nn.BatchNorm1d(3), nn.Linear(3, 1))
    with pytest.warns(UserWarning, match="BatchNorm1d"):
        est = GPCritic(critic=critic, allow_batch_norm=True)
    value = est(torch.randn(8, 3), torch.randn(8, 3))
    assert math.isfinite(float(value))


def test_batch_norm_penalty_is_constant() -> None:
    torch.manual_seed(0)
    critic = nn.Sequential(nn.BatchNorm1d(3), nn.Linear(3, 1)).train()
    penalty = gradient_penalty(critic, torch.randn(16, 3), torch.randn(16, 3) + 5.0)
    assert float(penalty) == pytest.approx(10.0, abs=1e-4)


# Weight clipping.


def test_clipped_after_every_update() -> None:
    torch.manual_seed(0)
    est = ClipCritic(n_critic=3, lr=0.1, clip_value=0.01)
    x, y = torch.randn(64, 2), torch.randn(64, 2) + 2.0
    for _ in range(4):
        est(x, y)
        for name in est.clipped_parameter_names:
            param = est.critic.get_parameter(name)
            assert float(param.abs().max()) <= 0.01 + 1e-12, name


def test_norm_scale_not_clipped() -> None:
    torch.manual_seed(0)
    critic = nn.Sequential(nn.Linear(2, 8), nn.LayerNorm(8), nn.Linear(8, 1))
    est = ClipCritic(critic=critic, n_critic=1)
    est(torch.randn(16, 2), torch.randn(16, 2))
    assert est.clipped_parameter_names == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert float(critic[1].weight.min()) > 0.5


@pytest.mark.parametrize("t, expected", [((1.0, 0.0), 0.01), ((0.7071, 0.7071), 0.014142)])
def test_linear_clipped_critic_scale(t: tuple[float, float], expected: float) -> None:
    torch.manual_seed(0)
    critic = nn.Linear(2, 1, bias=False)
    est = ClipCritic(critic=critic, n_critic=50, lr=0.01, clip_value=0.01)
    x = torch.tensor([t]).repeat(8, 1)
    y = torch.zeros(8, 2)
    value = est(x, y)
    assert float(value) == pytest.approx(expected, rel=1e-3)
    assert otbench.capabilities("critic-clip").scale_known is False


# Dense cost matrices that cannot fit.


@pytest.mark.parametrize("name", ["exact", "sinkhorn"])
def test_memory_budget_before_allocation(name: str) -> None:
    est = otbench.estimator(name, p=2, memory_budget=10**9)
    x = torch.zeros(60000, 2, dtype=torch.float64)
    with pytest.raises(MemoryBudgetError, match=r"n=60000, m=60000") as info:
        est(x, x)
    assert info.value.needed > 28.8e9
    assert "critic" in str(info.value)


def test_budget_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTBENCH_MEMORY_BUDGET", "1000")
    with pytest.raises(MemoryBudgetError):
        otbench.estimator("exact")(torch.zeros(20, 2), torch.ones(20, 2))


# The loss keeps its autograd graph.


@pytest.mark.parametrize(
    "name, params",
    [
        ("exact", {"p": 1}),
        ("exact", {"p": 2}),
        pytest.param("sinkhorn", {"p": 1, "blur": 1.0, "tol": 1e-12, "max_iter": 50_000}, marks=pytest.mark.slow),
        pytest.param("sinkhorn", {"p": 2, "blur": 1.0, "tol": 1e-12, "max_iter": 50_000}, marks=pytest.mark.slow),
        ("sinkhorn-entropic", {"p": 2, "blur": 1.0, "tol": 1e-12, "max_iter": 50_000}),
        ("sliced", {"p": 1, "projections": 16}),
        ("sliced", {"p": 2, "projections": 16}),
        ("max-sliced", {"p": 2, "projections": 16}),
    ],
)
def test_gradient_matches_finite_differences(name: str, params: dict) -> None:
    torch.manual_seed(0)
    x = torch.randn(10, 2, dtype=torch.float64, requires_grad=True)
    y = torch.randn(12, 2, dtype=torch.float64)
    est = otbench.estimator(name, **params)
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
    assert torch.allclose(grad, numeric, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("name", ["critic-clip", "critic-gp", "critic-lp", "critic-sn"])
def test_critic_value_differentiable(name: str) -> None:
    torch.manual_seed(0)
    x = torch.randn(10, 2, dtype=torch.float64, requires_grad=True)
    y = torch.randn(12, 2, dtype=torch.float64)
    est = otbench.estimator(name)
    value = est(x, y)
    assert value.grad_fn is not None
    (grad,) = torch.autograd.grad(value, x)
    h = 1e-6
    up, down = x.detach().clone(), x.detach().clone()
    up[0, 0] += h
    down[0, 0] -= h
    critic = est.critic
    critic.eval()  # the spectral-norm critic reads its outer value in eval mode
    with torch.no_grad():
        numeric = (critic(up).mean() - critic(down).mean()) / (2 * h)
    assert float(grad[0, 0]) == pytest.approx(float(numeric), rel=1e-5)
