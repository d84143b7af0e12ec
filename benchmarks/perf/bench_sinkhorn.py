"""Overhead of otbench's ``sinkhorn`` estimator over a hand-written GeomLoss call.

otbench uses the cost ||x - y||^2 with eps = blur^2. GeomLoss's SamplesLoss
uses ||x - y||^2 / 2 with eps = blur^2, so ``blur / sqrt(2)`` poses the same
problem: every ratio cost / eps, and so every Sinkhorn iteration, is equal,
and GeomLoss's value is S_eps / 2 in otbench's units. Both sides return
sqrt(S_eps) and backpropagate to x.

GeomLoss starts its eps-scaling annealing at diameter^2 in its own units, which
is twice otbench's start, so with its default it runs about
log(sqrt(2)) / log(1 / scaling) more iterations (3 to 4 at scaling = 0.9). The
reference passes ``diameter = D / sqrt(2)``, with D computed as GeomLoss
computes it, so that both run the same eps schedule. ``--geomloss-diameter``
leaves GeomLoss's default instead.

Run: python benchmarks/perf/bench_sinkhorn.py [--quick] [--n 256 1024] [--threads 1]
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable

import torch
from geomloss import SamplesLoss
from geomloss._legacy.sinkhorn_divergence import max_diameter

import otbench
from common import Row, build_parser, compare, describe_machine, make_row, print_table, resolve_options, sample_pair

BLUR = 0.05
SCALING = 0.9


def make_calls(
    n: int, seed: int, device: torch.device, match_schedule: bool
) -> tuple[Callable[[], float], Callable[[], float], Callable[[], int]]:
    """Return the otbench call, the reference call and otbench's last iteration count."""
    x, y = sample_pair(n, seed, device)
    x.requires_grad_(True)
    estimator = otbench.estimator("sinkhorn", p=2, blur=BLUR, scaling=SCALING)
    blur_geomloss = BLUR / math.sqrt(2.0)

    def otbench_call() -> float:
        x.grad = None
        value = estimator(x, y)
        value.backward()
        return float(value.detach())

    def reference_call() -> float:
        x.grad = None
        diameter = None
        if match_schedule:
            # otbench takes the diameter to be at least blur.
            diameter = max(max_diameter(x.detach(), y.detach()), BLUR) / math.sqrt(2.0)
        loss = SamplesLoss("sinkhorn", p=2, blur=blur_geomloss, scaling=SCALING, diameter=diameter, backend="tensorized")
        value = (2.0 * loss(x, y)).sqrt()
        value.backward()
        return float(value.detach())

    def otbench_iterations() -> int:
        assert estimator.last_solve is not None and estimator.last_solve.iterations is not None
        return estimator.last_solve.iterations

    return otbench_call, reference_call, otbench_iterations


def run(sizes: list[int], repeats: int, seed: int, device: torch.device, match_schedule: bool = True) -> list[Row]:
    """Return one table row per sample size."""
    rows = []
    name = "sinkhorn S_eps^(1/2)" + ("" if match_schedule else ", GeomLoss diameter")
    for n in sizes:
        otbench_call, reference_call, otbench_iterations = make_calls(n, seed, device, match_schedule)
        timing = compare(otbench_call, reference_call, repeats, device)
        difference = abs(float(timing.otbench_result) - float(timing.reference_result))  # type: ignore[arg-type]
        check = f"abs. value difference {difference:.1e}, {otbench_iterations()} iterations"
        rows.append(make_row(name, n, timing, check))
        print(f"done: {rows[-1].benchmark} n={n}, ratio {rows[-1].ratio:.3f}", flush=True)
    return rows


def add_options(parser: argparse.ArgumentParser) -> None:
    """Add this benchmark's own options to ``parser``."""
    parser.add_argument(
        "--geomloss-diameter",
        action="store_true",
        help="let GeomLoss estimate the diameter itself (3 to 4 more annealing iterations than otbench)",
    )


def main(argv: list[str] | None = None) -> None:
    parser = build_parser(__doc__.splitlines()[0])
    add_options(parser)
    args = parser.parse_args(argv)
    sizes, device = resolve_options(args)
    print(f"otbench sinkhorn (p=2, blur={BLUR}, scaling={SCALING}) forward + backward vs GeomLoss SamplesLoss")
    print(describe_machine(device), flush=True)
    start = time.perf_counter()
    rows = run(sizes, args.repeats, args.seed, device, match_schedule=not args.geomloss_diameter)
    print_table(rows, time.perf_counter() - start)


if __name__ == "__main__":
    main()
