"""Overhead of otbench's ``exact`` estimator over a hand-written POT call.

Both sides compute W_2 between the same float32 samples and backpropagate to
x: the squared Euclidean cost matrix, POT's network simplex (``ot.emd2``)
with the iteration cap that otbench uses, max(10^5, 10 n m), then the square
root and ``backward``.

Run: python benchmarks/perf/bench_exact.py [--quick] [--n 256 1024] [--threads 1]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import ot
import torch

import otbench
from common import Row, build_parser, compare, describe_machine, make_row, print_table, resolve_options, sample_pair


def make_calls(n: int, seed: int, device: torch.device) -> tuple[Callable[[], float], Callable[[], float]]:
    """Return the otbench call and the reference call; each returns the value as a float."""
    x, y = sample_pair(n, seed, device)
    x.requires_grad_(True)
    estimator = otbench.estimator("exact", p=2)
    a = torch.full((n,), 1.0 / n, dtype=x.dtype, device=device)
    b = torch.full((n,), 1.0 / n, dtype=x.dtype, device=device)
    max_iter = max(10**5, 10 * n * n)

    def otbench_call() -> float:
        x.grad = None
        value = estimator(x, y)
        value.backward()
        return float(value.detach())

    def reference_call() -> float:
        x.grad = None
        cost = ot.dist(x, y)
        value = ot.emd2(a, b, cost, numItermax=max_iter).sqrt()
        value.backward()
        return float(value.detach())

    return otbench_call, reference_call


def run(sizes: list[int], repeats: int, seed: int, device: torch.device) -> list[Row]:
    """Return one table row per sample size."""
    rows = []
    for n in sizes:
        otbench_call, reference_call = make_calls(n, seed, device)
        timing = compare(otbench_call, reference_call, repeats, device)
        difference = abs(float(timing.otbench_result) - float(timing.reference_result))  # type: ignore[arg-type]
        check = f"abs. value difference {difference:.1e}"
        rows.append(make_row("exact W2", n, timing, check))
        print(f"done: {rows[-1].benchmark} n={n}, ratio {rows[-1].ratio:.3f}", flush=True)
    return rows


def main(argv: list[str] | None = None) -> None:
    parser: argparse.ArgumentParser = build_parser(__doc__.splitlines()[0])
    args = parser.parse_args(argv)
    sizes, device = resolve_options(args)
    print("otbench exact (p=2) forward + backward vs ot.dist + ot.emd2 + sqrt")
    print(describe_machine(device), flush=True)
    start = time.perf_counter()
    rows = run(sizes, args.repeats, args.seed, device)
    print_table(rows, time.perf_counter() - start)


if __name__ == "__main__":
    main()
