"""Run the exact, sinkhorn and critic-gp overhead benchmarks in one process and print one table.

Each row compares an otbench call with the hand-written call of the library
it wraps, on the same float32 samples in d = 2; see bench_exact.py,
bench_sinkhorn.py and bench_critic.py for what each side computes.

Run: python benchmarks/perf/run_all.py [--quick] [--n 256 1024] [--repeats 7] [--threads 1] [--device cpu]
"""

from __future__ import annotations

import time

import bench_critic
import bench_exact
import bench_sinkhorn
from common import build_parser, describe_machine, print_table, resolve_options


def main(argv: list[str] | None = None) -> None:
    parser = build_parser(__doc__.splitlines()[0])
    bench_sinkhorn.add_options(parser)
    args = parser.parse_args(argv)
    sizes, device = resolve_options(args)
    print("otbench overhead over hand-written POT, GeomLoss and WGAN-GP calls (forward + backward)")
    print(describe_machine(device), flush=True)

    start = time.perf_counter()
    rows = bench_exact.run(sizes, args.repeats, args.seed, device)
    rows += bench_sinkhorn.run(sizes, args.repeats, args.seed, device, match_schedule=not args.geomloss_diameter)
    rows += bench_critic.run(sizes, args.repeats, args.seed, device)
    print_table(rows, time.perf_counter() - start)


if __name__ == "__main__":
    main()
