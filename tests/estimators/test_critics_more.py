"""The one-sided penalty, spectrally normalised and c-transform critics."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import spectral_norm

import otbench
from otbench.estimators import MemoryBudgetError
from otbench.estimators.base import Estimator, pairwise_cost
from otbench.estimators.critics import LPCritic, SNCritic, gradient_penalty
from otbench.estimators.ctransform import CTransformCritic, c_transform, dual_objective
from otbench.models import mlp_critic

ESTIMATORS: dict[str, type[Estimator]] = {
    "critic-lp": LPCritic,
    "critic-sn": SNCritic,
    "critic-ctransform": CTransformCritic,
}


def build(name: str, **params: object) -> Estimator:
    return ESTIMATORS[name](**params)


def translated_pair(n: int, seed: int, shift: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Return two 2-D standard Gaussian batches, y translated by (shift, 0), in float64."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 2, generator=generator, dtype=torch.float64)
    y = torch.randn(n, 2, generator=generator, dtype=torch.float64)
    y[:, 0] += shift
    return x, y


def linear_critic(weight: list[float]) -> nn.Linear:
    critic = nn.Linear(len(weight), 1)
    with torch.no_grad():
        critic.weight.copy_(torch.tensor([weight]))
        critic.bias.fill_(0.3)
    return critic


class PixelSum(nn.Module):
    """D(x) = scale * (sum of all entries of one example)."""

    def __init__(self, scale: float) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(scale))

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        return self.scale * batch.sum(dim=(1, 2, 3))


# The one-sided gradient penalty.


def test_lp_penalty_zero_below_one() -> None:
    torch.manual_seed(0)
    critic = linear_critic([0.3, 0.4, 0.0, 0.0])
    real, fake = torch.randn(16, 4), torch.randn(16, 4)
    one_sided = gradient_penalty(critic, real, fake, gp_weight=10.0, one_sided=True).detach()
    two_sided = gradient_penalty(critic, real, fake, gp_weight=10.0).detach()
    assert float(one_sided) == 0.0
    assert float(two_sided) == pytest.approx(2.5, rel=1e-6)


def test_lp_penalty_equals_gp_above_one() -> None:
    critic = linear_critic([1.2, 1.6, 0.0, 0.0])
    real, fake = torch.randn(16, 4), torch.randn(16, 4)
    torch.manual_seed(0)
    one_sided = gradient_penalty(critic, real, fake, gp_weight=10.0, one_sided=True).detach()
    torch.manual_seed(0)
    two_sided = gradient_penalty(critic, real, fake, gp_weight=10.0).detach()
    assert float(one_sided) == pytest.approx(10.0, rel=1e-6)
    assert float(one_sided) == float(two_sided)


def test_lp_norm_over_all_axes() -> None:
    # Each pixel's derivative is 1/4, so the norm over all 64 pixels is 2. A norm
    # over the channel axis alone would be 1/4, which is below 1 and unpenalised.
    torch.manual_seed(0)
    real, fake = torch.ones(2, 1, 8, 8), -torch.ones(2, 1, 8, 8)
    penalty = gradient_penalty(PixelSum(0.25), real, fake, gp_weight=10.0, one_sided=True).detach()
    assert float(penalty) == pytest.approx(10.0, rel=1e-6)


def test_lp_interpolation_per_example() -> None:
    torch.manual_seed(0)
    real, fake = torch.ones(8, 3, 8, 8), -torch.ones(8, 3, 8, 8)
    seen: list[torch.Tensor] = []

    class Recorder(PixelSum):
        def forward(self, batch: torch.Tensor) -> torch.Tensor:
            seen.append(batch.detach().clone())
            return super().forward(batch)

    LPCritic(critic=Recorder(0.01), n_critic=1)(fake, real)
    interpolates = [batch for batch in seen if not bool((batch.abs() == 1).all())]
    assert len(interpolates) == 1
    factor = ((interpolates[0] - fake) / (real - fake)).flatten(start_dim=1)
    assert torch.allclose(factor, factor[:, :1].expand_as(factor))
    assert not torch.allclose(factor[:, 0], factor[0, 0].expand(8))


def test_lp_rejects_batch_norm() -> None:
    critic = nn.Sequential(nn.BatchNorm1d(3), nn.Linear(3, 1))
    with pytest.raises(ValueError, match=r"'0' \(BatchNorm1d\).*LayerNorm"):
        LPCritic(critic=critic)


def test_lp_batch_norm_opt_out_warns() -> None:
    critic = nn.Sequential(nn.BatchNorm1d(3), nn.Linear(3, 1))
    with pytest.warns(UserWarning, match=r"critic-lp: .*BatchNorm1d"):
        LPCritic(critic=critic, allow_batch_norm=True)


# Spectral normalisation.


def test_sn_default_layers_parametrized() -> None:
    est = SNCritic(n_critic=1)
    est(torch.randn(16, 2), torch.randn(16, 2))
    linear = [layer for layer in est.critic.modules() if isinstance(layer, nn.Linear)]
    assert len(linear) == 4
    for layer in linear:
        assert parametrize.is_parametrized(layer, "weight")
    assert est.normalized_layer_names == ["0", "2", "4", "6"]


def test_sn_conv_layers_parametrized() -> None:
    est = SNCritic(n_critic=1)
    est(torch.rand(4, 1, 8, 8), torch.rand(4, 1, 8, 8))
    layers = [layer for layer in est.critic.modules() if isinstance(layer, (nn.Conv2d, nn.Linear))]
    assert len(layers) == 3
    for layer in layers:
        assert parametrize.is_parametrized(layer, "weight")


def test_sn_user_critic_changed_in_place() -> None:
    critic = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 1))
    est = SNCritic(critic=critic)
    assert est.critic is critic
    assert parametrize.is_parametrized(critic[0], "weight")
    assert parametrize.is_parametrized(critic[2], "weight")


def test_sn_existing_normalisation_kept() -> None:
    critic = nn.Sequential(spectral_norm(nn.Linear(2, 8)), nn.ReLU(), nn.Linear(8, 1))
    SNCritic(critic=critic)
    assert len(critic[0].parametrizations["weight"]) == 1
    assert len(critic[2].parametrizations["weight"]) == 1


def test_sn_singular_values_near_one() -> None:
    torch.manual_seed(0)
    x, y = translated_pair(64, seed=1, shift=2.0)
    est = SNCritic(n_critic=10, lr=1e-3)
    for _ in range(3):
        est(x, y)
    with torch.no_grad():
        for _ in range(50):
            for layer in est.critic.modules():
                if isinstance(layer, nn.Linear):
                    _ = layer.weight
    est.critic.eval()
    for name in est.normalized_layer_names:
        weight = est.critic.get_submodule(name).weight
        largest = float(torch.linalg.matrix_norm(weight.detach(), ord=2))
        assert largest == pytest.approx(1.0, abs=1e-3), name


@pytest.mark.slow
def test_sn_trained_critic_lipschitz() -> None:
    torch.manual_seed(0)
    x, y = translated_pair(64, seed=2, shift=2.0)
    est = SNCritic(n_critic=50, lr=1e-3)
    for _ in range(4):
        value = est(x, y)
    exact = float(otbench.estimator("exact", p=1)(x, y))
    assert float(value) <= exact
    assert float(value) > 0.3 * exact

    critic = est.critic.eval()
    generator = torch.Generator().manual_seed(3)
    a = 3 * torch.randn(2000, 2, generator=generator, dtype=torch.float64)
    b = a + 0.5 * torch.randn(2000, 2, generator=generator, dtype=torch.float64)
    with torch.no_grad():
        ratio = (critic(a) - critic(b)).abs().reshape(-1) / (a - b).norm(dim=1)
    assert float(ratio.max()) <= 1.0 + 1e-3


def test_sn_value_uses_eval_weights() -> None:
    torch.manual_seed(0)
    x, y = torch.randn(16, 2), torch.randn(16, 2) + 1.0
    est = SNCritic(n_critic=3, lr=1e-3)
    value = est(x, y)
    assert est.critic.training
    est.critic.eval()
    with torch.no_grad():
        again = est.critic(x).mean() - est.critic(y).mean()
    assert float(value) == float(again)


@pytest.mark.parametrize(
    "layer, label",
    [(nn.BatchNorm1d(8), "BatchNorm1d"), (nn.LayerNorm(8), "LayerNorm"), (nn.PReLU(), "PReLU")],
)
def test_sn_rejects_unconstrained_layer(layer: nn.Module, label: str) -> None:
    critic = nn.Sequential(nn.Linear(2, 8), layer, nn.Linear(8, 1))
    with pytest.raises(ValueError, match=rf"'1' \({label}\).*allow_unconstrained_layers=True"):
        SNCritic(critic=critic)


def test_sn_unconstrained_opt_out_warns() -> None:
    critic = nn.Sequential(nn.Linear(2, 8), nn.LayerNorm(8), nn.Linear(8, 1))
    with pytest.warns(UserWarning, match=r"critic-sn: .*LayerNorm"):
        est = SNCritic(critic=critic, allow_unconstrained_layers=True)
    assert math.isfinite(float(est(torch.randn(8, 2), torch.randn(8, 2))))


def test_sn_critic_without_linear_rejected() -> None:
    with pytest.raises(ValueError, match=r"no Linear or Conv layer"):
        SNCritic(critic=nn.Sequential(nn.ReLU()))


# The c-transform critic.


@pytest.mark.parametrize("p", [1, 2])
def test_ctransform_objective_below_exact(p: int) -> None:
    torch.manual_seed(0)
    x, y = torch.randn(20, 2, dtype=torch.float64), torch.randn(30, 2, dtype=torch.float64) + 0.5
    exact = float(otbench.estimator("exact", p=p)(x, y)) ** p
    cost = pairwise_cost(x, y, p)
    for scale in (0.1, 1.0, 10.0):
        critic = mlp_critic(2).double()
        with torch.no_grad():
            potential = scale * critic(x).reshape(-1)
        assert float(dual_objective(cost, potential)) <= exact + 1e-12, scale


@pytest.mark.parametrize("p", [1, 2])
def test_ctransform_approaches_exact(p: int) -> None:
    torch.manual_seed(0)
    x, y = translated_pair(64, seed=4)
    exact = float(otbench.estimator("exact", p=p)(x, y))
    est = CTransformCritic(p=p, n_critic=50)
    for _ in range(4):
        value = float(est(x, y))
    assert value == pytest.approx(exact, rel=0.1)
    assert value <= exact * (1 + 1e-12)


def test_ctransform_lipschitz_for_p1() -> None:
    generator = torch.Generator().manual_seed(5)
    x = torch.randn(20, 2, generator=generator, dtype=torch.float64)
    potential = 3 * torch.randn(20, generator=generator, dtype=torch.float64)
    a = 2 * torch.randn(500, 2, generator=generator, dtype=torch.float64)
    b = a + torch.randn(500, 2, generator=generator, dtype=torch.float64)
    change = (c_transform(pairwise_cost(x, a, 1), potential) - c_transform(pairwise_cost(x, b, 1), potential)).abs()
    assert bool((change <= (a - b).norm(dim=1) + 1e-12).all())


def test_ctransform_gradient_ignores_potential_slope() -> None:
    # x = (0, 1), y = (5, 6), p = 2 and f(x) = 10 - 10 x: each y_j has x_j as
    # its minimiser, so f's slope cancels and d/dx_i = (1/2) * 2 (x_i - y_i) = -5.
    x = torch.tensor([[0.0], [1.0]], dtype=torch.float64, requires_grad=True)
    y = torch.tensor([[5.0], [6.0]], dtype=torch.float64)
    potential = (10.0 - 10.0 * x).reshape(-1)
    objective = dual_objective(pairwise_cost(x, y, 2), potential)
    objective.backward()
    assert float(objective.detach()) == pytest.approx(25.0, abs=1e-12)
    assert x.grad.reshape(-1).tolist() == pytest.approx([-5.0, -5.0], abs=1e-12)


def test_ctransform_gradient_matches_finite_differences() -> None:
    torch.manual_seed(0)
    x, y = translated_pair(12, seed=6)
    x.requires_grad_(True)
    est = CTransformCritic(p=2, n_critic=20)
    (grad,) = torch.autograd.grad(est(x, y), x)
    critic = est.critic

    def value(points: torch.Tensor) -> float:
        with torch.no_grad():
            return float(dual_objective(pairwise_cost(points, y, 2), critic(points).reshape(-1)).sqrt())

    h = 1e-6
    for i, j in [(0, 0), (3, 1), (7, 0)]:
        up, down = x.detach().clone(), x.detach().clone()
        up[i, j] += h
        down[i, j] -= h
        numeric = (value(up) - value(down)) / (2 * h)
        assert float(grad[i, j]) == pytest.approx(numeric, rel=1e-5, abs=1e-9), (i, j)


def test_ctransform_memory_budget_before_allocation() -> None:
    est = CTransformCritic(p=2, memory_budget=10**9)
    x = torch.zeros(60000, 1, dtype=torch.float64)
    with pytest.raises(MemoryBudgetError, match=r"n=60000, m=60000") as info:
        est(x, x)
    assert info.value.needed > 28.8e9
    assert est.critic is None


def test_ctransform_accepts_p2() -> None:
    est = CTransformCritic(p=2)
    assert est.p == 2
    assert est.capabilities.orders == (1, 2)


# The contract, for all three.


@pytest.mark.parametrize("name", ["critic-lp", "critic-sn"])
def test_rejects_p2(name: str) -> None:
    with pytest.raises(ValueError, match=r"p=2 is not supported.*W_1 only"):
        build(name, p=2)


@pytest.mark.parametrize("name", ESTIMATORS)
def test_capabilities(name: str) -> None:
    capabilities = ESTIMATORS[name].capabilities
    assert capabilities.weights is False
    assert capabilities.inner_loop is True
    assert capabilities.exact is False
    assert capabilities.scale_known is True
    assert capabilities.images is True


@pytest.mark.parametrize("name", ESTIMATORS)
@pytest.mark.parametrize(
    "x, y, pattern",
    [
        (torch.zeros(0, 2), torch.ones(3, 2), r"x is empty"),
        (torch.tensor([[0.0, math.nan]]), torch.ones(3, 2), r"x contains 1 NaN or inf"),
        (torch.tensor([0.0, 1.0, 3.0]), torch.ones(3, 1), r"reshape\(-1, 1\)"),
        (torch.zeros(5, 2), torch.zeros(5, 3), r"x has shape \(5, 2\) and y has shape \(5, 3\)"),
    ],
    ids=["empty", "nan", "bare-vector", "feature-mismatch"],
)
def test_input_rejected(name: str, x: torch.Tensor, y: torch.Tensor, pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        build(name)(x, y)


@pytest.mark.parametrize("name", ESTIMATORS)
def test_several_outputs_rejected(name: str) -> None:
    est = build(name, critic=nn.Linear(2, 3))
    with pytest.raises(ValueError, match=r"critic maps a batch of shape \(2, 2\) to \(2, 3\)"):
        est(torch.randn(8, 2), torch.randn(8, 2))


@pytest.mark.parametrize(
    "name, params, pattern",
    [
        ("critic-lp", {"gp_weight": -1.0}, r"gp_weight=-1\.0 is invalid"),
        ("critic-lp", {"n_critic": 0}, r"n_critic=0 is invalid"),
        ("critic-sn", {"betas": (0.0, 1.5)}, r"betas=\(0\.0, 1\.5\) is invalid"),
        ("critic-sn", {"n_power_iterations": 0}, r"n_power_iterations=0 is invalid"),
        ("critic-sn", {"lr": float("nan")}, r"lr=nan is invalid"),
        ("critic-ctransform", {"memory_budget": 0}, r"memory_budget=0 is invalid"),
        ("critic-ctransform", {"p": 3}, r"p=3 is not supported.*\[1, 2\]"),
        ("critic-ctransform", {"critic": "mlp"}, r"critic must be a torch.nn.Module"),
    ],
)
def test_invalid_parameters(name: str, params: dict, pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        build(name, **params)


@pytest.mark.parametrize("name, p", [("critic-lp", 1), ("critic-sn", 1), ("critic-ctransform", 1), ("critic-ctransform", 2)])
@pytest.mark.parametrize("points", [[[1.0, 2.0]], [[1.0]] * 5, "random"], ids=["one-point", "five-copies", "shuffled"])
def test_identical_inputs_give_zero(name: str, p: int, points: list | str) -> None:
    torch.manual_seed(0)
    base = torch.randn(6, 2) if points == "random" else torch.tensor(points)
    x = base.clone().requires_grad_(True)
    y = base[torch.randperm(base.shape[0])]
    value = build(name, p=p)(x, y)
    value.backward()
    assert float(value.detach()) == 0.0
    assert torch.equal(x.grad, torch.zeros_like(x))


@pytest.mark.parametrize("name, p", [("critic-lp", 1), ("critic-sn", 1), ("critic-ctransform", 1), ("critic-ctransform", 2)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_gradients_reach_x(name: str, p: int, dtype: torch.dtype) -> None:
    torch.manual_seed(0)
    x, y = translated_pair(16, seed=7)
    x = x.to(dtype).requires_grad_(True)
    value = build(name, p=p, n_critic=3)(x, y)
    value.backward()
    assert value.dtype == dtype
    assert value.grad_fn is not None
    assert bool(torch.isfinite(x.grad).all())
    assert float(x.grad.abs().sum()) > 0.0


@pytest.mark.parametrize("name", ESTIMATORS)
def test_last_solve_counts_steps(name: str) -> None:
    est = build(name, n_critic=3)
    x, y = torch.randn(8, 2), torch.randn(8, 2)
    value = est(x, y)
    assert est.last_solve.iterations == 3
    assert est.last_solve.converged is None
    assert est.last_solve.value == float(value)
    assert est.last_solve.seconds > 0


@pytest.mark.parametrize("name", ESTIMATORS)
def test_images_kept_whole(name: str) -> None:
    torch.manual_seed(0)
    x = torch.rand(8, 1, 8, 8).requires_grad_(True)
    y = torch.rand(8, 1, 8, 8)
    est = build(name, n_critic=2)
    value = est(x, y)
    value.backward()
    assert isinstance(est.critic[0], nn.Conv2d)
    assert math.isfinite(float(value.detach()))
    assert x.grad.shape == (8, 1, 8, 8)


@pytest.mark.parametrize(
    "name, keys",
    [
        ("critic-lp", {"p", "n_critic", "lr", "critic", "betas", "gp_weight"}),
        ("critic-sn", {"p", "n_critic", "lr", "critic", "betas", "n_power_iterations"}),
        ("critic-ctransform", {"p", "n_critic", "lr", "critic", "betas", "memory_budget"}),
    ],
)
def test_config_keys(name: str, keys: set[str]) -> None:
    assert set(build(name).config()) == keys
