"""Overhead of one ``critic-gp`` inner step over a hand-written WGAN-GP critic step.

Both sides train the same network (the reference gets a deep copy of the
critic that otbench builds on its first call) with Adam(lr=1e-4,
betas=(0, 0.9)) on the same detached samples: zero the gradients, compute
mean f(y) - mean f(x) + 10 mean_i (||grad f(x_hat_i)||_2 - 1)^2 with one
uniform factor per example on the segment from x_i to y_i (Gulrajani et al.
2017, "Improved Training of Wasserstein GANs"), backpropagate, step.

Run: python benchmarks/perf/bench_critic.py [--quick] [--n 256 1024] [--threads 1]
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable

import torch
from torch import nn

import otbench
from otbench.estimators.critics import GPCritic
from common import Row, build_parser, compare, describe_machine, make_row, print_table, resolve_options, sample_pair

GP_WEIGHT = 10.0


def reference_step(critic: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor) -> None:
    """Run one WGAN-GP critic update, written as a user would write it."""
    optimizer.zero_grad()
    factor = torch.rand(x.shape[0], 1, dtype=x.dtype, device=x.device)
    x_hat = (x + factor * (y - x)).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)
    penalty = (grad.norm(2, dim=1) - 1.0).pow(2).mean()
    loss = critic(y).mean() - critic(x).mean() + GP_WEIGHT * penalty
    loss.backward()
    optimizer.step()


def make_calls(n: int, seed: int, device: torch.device) -> tuple[Callable[[], None], Callable[[], None], float]:
    """Return the otbench step, the reference step and the largest parameter difference after one step of each.

    The parameter check runs both steps once from equal parameters with the
    same random factors, on throw-away copies.
    """
    x, y = sample_pair(n, seed, device)
    estimator = otbench.estimator("critic-gp", p=1, n_critic=1)
    assert isinstance(estimator, GPCritic)
    estimator(x, y)  # builds the default critic and its optimiser
    critic = estimator.critic
    assert critic is not None and estimator.optimizer is not None

    reference_critic = copy.deepcopy(critic)
    reference_optimizer = torch.optim.Adam(reference_critic.parameters(), lr=1e-4, betas=(0.0, 0.9))

    check_estimator = copy.deepcopy(estimator)
    check_estimator_critic = check_estimator.critic
    assert check_estimator_critic is not None
    check_critic = copy.deepcopy(critic)
    check_optimizer = torch.optim.Adam(check_critic.parameters(), lr=1e-4, betas=(0.0, 0.9))
    check_optimizer.load_state_dict(estimator.optimizer.state_dict())
    torch.manual_seed(seed)
    check_estimator._inner_step(check_estimator_critic, x, y)
    torch.manual_seed(seed)
    reference_step(check_critic, check_optimizer, x, y)
    difference = max(
        float((otbench_param - reference_param).detach().abs().max())
        for otbench_param, reference_param in zip(check_estimator_critic.parameters(), check_critic.parameters())
    )

    def otbench_call() -> None:
        estimator._inner_step(critic, x, y)

    def reference_call() -> None:
        reference_step(reference_critic, reference_optimizer, x, y)

    return otbench_call, reference_call, difference


def run(sizes: list[int], repeats: int, seed: int, device: torch.device) -> list[Row]:
    """Return one table row per sample size."""
    rows = []
    for n in sizes:
        otbench_call, reference_call, difference = make_calls(n, seed, device)
        timing = compare(otbench_call, reference_call, repeats, device)
        check = f"max. parameter difference after one step {difference:.1e}"
        rows.append(make_row("critic-gp inner step", n, timing, check))
        print(f"done: {rows[-1].benchmark} n={n}, ratio {rows[-1].ratio:.3f}", flush=True)
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = build_parser(__doc__.splitlines()[0])
    args = parser.parse_args(argv)
    sizes, device = resolve_options(args)
    print("otbench critic-gp inner step vs a hand-written WGAN-GP step (same network, Adam(1e-4, (0, 0.9)))")
    print(describe_machine(device), flush=True)
    start = time.perf_counter()
    rows = run(sizes, args.repeats, args.seed, device)
    print_table(rows, time.perf_counter() - start)


if __name__ == "__main__":
    main()
