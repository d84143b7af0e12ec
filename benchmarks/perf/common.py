"""Shared parts of the overhead benchmarks: options, machine report, timing and the table.

Each benchmark compares one otbench call with the call a user would write by
hand with the library otbench wraps, on the same inputs. The two calls are
timed in alternation, so that background load slows both alike, and the
table reports the median seconds of each and their ratio.
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import platform
import shlex
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import metadata

import torch

from otbench.bench.environment import cpu_model

DEFAULT_SIZES = (256, 1024, 4096)
QUICK_SIZES = (256, 1024)
DIMENSION = 2
DTYPE = torch.float32

# A timed sample shorter than this repeats the call in a loop, because
# perf_counter around a single sub-millisecond call mostly measures noise.
MIN_SAMPLE_SECONDS = 0.02
MAX_CALLS_PER_SAMPLE = 50
# Calls slower than this get at most SLOW_REPEATS timed samples per side.
SLOW_CALL_SECONDS = 2.0
SLOW_REPEATS = 3


@dataclass(frozen=True)
class Row:
    """One line of the results table: one benchmark at one size."""

    benchmark: str
    n: int
    d: int
    otbench_seconds: float
    reference_seconds: float
    repeats: int
    calls_per_sample: int
    check: str

    @property
    def ratio(self) -> float:
        return self.otbench_seconds / self.reference_seconds


def build_parser(description: str) -> argparse.ArgumentParser:
    """Return the option parser shared by every benchmark script."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--n",
        type=int,
        nargs="+",
        default=None,
        help=f"sample sizes n = m to run (default: {' '.join(map(str, DEFAULT_SIZES))})",
    )
    parser.add_argument("--quick", action="store_true", help=f"run only n in {list(QUICK_SIZES)}")
    parser.add_argument(
        "--repeats",
        type=int,
        default=7,
        help=f"timed samples per side; calls slower than {SLOW_CALL_SECONDS:g} s get at most {SLOW_REPEATS}",
    )
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (torch.set_num_threads)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="device of the samples")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random samples")
    return parser


def resolve_options(args: argparse.Namespace) -> tuple[list[int], torch.device]:
    """Apply the thread count and return the sample sizes and the device, or exit with an error."""
    if args.repeats < 1:
        sys.exit(f"error: --repeats={args.repeats} is invalid; expected a positive integer")
    if args.threads < 1:
        sys.exit(f"error: --threads={args.threads} is invalid; expected a positive integer")
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("error: --device cuda was requested but torch.cuda.is_available() is False; use --device cpu")
    if args.n is not None and args.quick:
        sys.exit("error: --n and --quick were both given; expected one of them")
    sizes = list(QUICK_SIZES if args.quick else (args.n or DEFAULT_SIZES))
    if any(n < 2 for n in sizes):
        sys.exit(f"error: --n {sizes} is invalid; expected sizes of at least 2")
    torch.set_num_threads(args.threads)
    return sizes, torch.device(args.device)


def sample_pair(n: int, seed: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Return x ~ N(0, I) and y ~ N((1, 0, ...), I), both (n, DIMENSION) float32 on ``device``."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, DIMENSION, generator=generator, dtype=DTYPE)
    y = torch.randn(n, DIMENSION, generator=generator, dtype=DTYPE)
    y[:, 0] += 1.0
    return x.to(device), y.to(device)


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def describe_machine(device: torch.device) -> str:
    """Return the machine, thread count, package versions and command as printable lines."""
    lines = [
        f"command: {shlex.join([sys.executable, *sys.argv])}",
        f"cpu: {cpu_model() or 'unknown'}, {os.cpu_count()} logical cores",
        f"torch threads: {torch.get_num_threads()} (torch.set_num_threads)",
    ]
    try:
        load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
        lines.append(f"load average at start (1, 5, 15 min): {load}")
    except OSError:
        pass
    if device.type == "cuda":
        lines.append(f"gpu: {torch.cuda.get_device_name(device)}")
    lines.append(f"device: {device.type}, dtype: float32, d = {DIMENSION}")
    packages = ("torch", "pot", "geomloss", "numpy", "otbench")
    lines.append(f"python {platform.python_version()}; " + ", ".join(f"{p} {_version(p)}" for p in packages))
    return "\n".join(lines)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time_calls(call: Callable[[], object], calls: int, device: torch.device) -> tuple[float, object]:
    """Return the wall-clock seconds per call of ``calls`` back-to-back calls, and the last result."""
    _synchronize(device)
    start = time.perf_counter()
    for _ in range(calls):
        result = call()
    _synchronize(device)
    return (time.perf_counter() - start) / calls, result


@dataclass(frozen=True)
class Comparison:
    """Median seconds per call of both sides, and what the first (warm-up) calls returned."""

    otbench_seconds: float
    reference_seconds: float
    repeats: int
    calls_per_sample: int
    otbench_result: object
    reference_result: object


def compare(
    otbench_call: Callable[[], object],
    reference_call: Callable[[], object],
    repeats: int,
    device: torch.device,
) -> Comparison:
    """Time two calls in alternation and return their median seconds per call.

    One warm-up call of each runs first. Its result is returned for the
    caller's check that both sides compute the same thing, and its time sets
    how many calls make up a timed sample (enough for MIN_SAMPLE_SECONDS) and
    whether the repeats are cut to SLOW_REPEATS. The order within each pair
    of samples alternates, so neither side always runs first.
    """
    otbench_warm, otbench_result = _time_calls(otbench_call, 1, device)
    reference_warm, reference_result = _time_calls(reference_call, 1, device)
    warm = max(otbench_warm, reference_warm)
    if warm < MIN_SAMPLE_SECONDS:
        # A second warm-up lets allocator caches and lazy initialisation settle.
        warm = max(_time_calls(otbench_call, 1, device)[0], _time_calls(reference_call, 1, device)[0])
    calls = min(MAX_CALLS_PER_SAMPLE, max(1, math.ceil(MIN_SAMPLE_SECONDS / max(warm, 1e-9))))
    if warm > SLOW_CALL_SECONDS:
        repeats = min(repeats, SLOW_REPEATS)

    otbench_samples: list[float] = []
    reference_samples: list[float] = []
    for index in range(repeats):
        gc.collect()
        if index % 2 == 0:
            otbench_samples.append(_time_calls(otbench_call, calls, device)[0])
            reference_samples.append(_time_calls(reference_call, calls, device)[0])
        else:
            reference_samples.append(_time_calls(reference_call, calls, device)[0])
            otbench_samples.append(_time_calls(otbench_call, calls, device)[0])
    return Comparison(
        statistics.median(otbench_samples),
        statistics.median(reference_samples),
        repeats,
        calls,
        otbench_result,
        reference_result,
    )


def make_row(benchmark: str, n: int, timing: Comparison, check: str) -> Row:
    """Return the table row of one benchmark at sample size ``n``."""
    return Row(
        benchmark,
        n,
        DIMENSION,
        timing.otbench_seconds,
        timing.reference_seconds,
        timing.repeats,
        timing.calls_per_sample,
        check,
    )


def format_table(rows: Sequence[Row]) -> str:
    """Return the rows as a Markdown table."""
    header = (
        "| benchmark | n | d | otbench median (s) | reference median (s) | ratio | repeats x calls | check |\n"
        "|---|---:|---:|---:|---:|---:|---:|---|"
    )
    lines = [header]
    for row in rows:
        lines.append(
            f"| {row.benchmark} | {row.n} | {row.d} | {row.otbench_seconds:.4g} | "
            f"{row.reference_seconds:.4g} | {row.ratio:.3f} | {row.repeats} x {row.calls_per_sample} | {row.check} |"
        )
    return "\n".join(lines)


def print_table(rows: Sequence[Row], seconds: float) -> None:
    """Print the table and the total runtime."""
    print()
    print(format_table(rows))
    print()
    print("ratio = otbench median / reference median; the target is at most 1.05.")
    print(f"total runtime: {seconds:.1f} s")
