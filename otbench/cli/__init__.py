"""The ``otbench`` command: run suites, write reports, list components, estimate one distance, train a generator.

User mistakes (an invalid suite, option or value) print one line
``otbench: error: ...`` to stderr and exit with status 2, without a traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .common import (
    _EXIT_INTERRUPTED,
    _EXIT_USAGE,
    _UsageError,
    _estimator_params,
    _key_values,
    _non_negative_int,
    _number,
    _positive_int,
    _yes,
)
from .train import _add_train_parser, _cmd_train

__all__ = ["main"]

logger = logging.getLogger("otbench.cli")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``otbench`` command line with ``argv`` (``sys.argv[1:]`` if None) and return the exit status."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    args.command_line = ["otbench", *(sys.argv[1:] if argv is None else argv)]
    _configure_logging(args.verbose)
    try:
        return int(args.handler(args))
    except (ValueError, _UsageError) as error:
        # SuiteError, RunFolderError and estimator or problem ValueErrors are user mistakes.
        logger.debug("user error", exc_info=True)
        print(f"otbench: error: {error}", file=sys.stderr)
        return _EXIT_USAGE
    except BrokenPipeError:
        # The reader of stdout stopped early (``otbench list | head``): point stdout
        # at devnull so that the interpreter's final flush does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="otbench",
        description="Benchmark Wasserstein estimators: distance accuracy, inner-loop cost and "
        "sample quality of generators trained with each.",
    )
    parser.add_argument(
        "-v", "--verbose", action="count", default=0,
        help="log more: -v for progress messages (INFO), -vv for debugging details (DEBUG)",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser(
        "run", help="run a benchmark suite", description="Run every cell of a suite file and record the results."
    )
    run.add_argument("suite", type=Path, metavar="SUITE", help="path of the suite file (TOML)")
    run.add_argument(
        "--out", type=Path, default=None, metavar="DIR",
        help="run folder for records, environment and report (default: runs/<suite name>)",
    )
    run.add_argument(
        "--workers", type=_positive_int, default=None, metavar="N",
        help="worker processes running cells in parallel (default: the number of CPU cores); "
        "each uses max(1, cores // N) torch threads",
    )
    run.add_argument(
        "--resume", action="store_true",
        help="keep the records already in DIR/records.jsonl and run only the missing cells",
    )
    run.add_argument(
        "--report", action=argparse.BooleanOptionalAction, default=True,
        help="write report.md and report.html into the run folder at the end (default: on)",
    )
    run.add_argument(
        "--no-progress", action="store_true", help="hide the progress bar (for logs and CI)"
    )
    run.set_defaults(handler=_cmd_run)

    report = commands.add_parser(
        "report", help="write the report of a run folder",
        description="Write report.md, report.html and figures from RUN/records.jsonl.",
    )
    report.add_argument("run_dir", type=Path, metavar="RUN", help="run folder written by 'otbench run'")
    report.set_defaults(handler=_cmd_report)

    listing = commands.add_parser(
        "list", help="list estimators, problems and data sets",
        description="List the registered estimators with their capabilities, the problems "
        "with the orders p whose true distance they know, and the training data sets.",
    )
    listing.set_defaults(handler=_cmd_list)

    estimate = commands.add_parser(
        "estimate", help="estimate W_p on one problem and compare with the truth",
        description="Sample a pair from a problem with a known distance, run one estimator "
        "and print the estimate next to the true W_p.",
    )
    estimate.add_argument("name", metavar="NAME", help="estimator name (see 'otbench list')")
    estimate.add_argument("--problem", required=True, help="problem name (see 'otbench list')")
    estimate.add_argument("--n", type=_positive_int, default=512, help="samples per side (default: 512)")
    estimate.add_argument("--p", type=int, default=1, help="order p of W_p, 1 or 2 (default: 1)")
    estimate.add_argument("--seed", type=_non_negative_int, default=0, help="seed of the samples and the critic (default: 0)")
    estimate.add_argument(
        "--critic-steps", type=_positive_int, default=1000, metavar="STEPS",
        help="critic training steps, summed over calls, before a critic estimator's value is read: "
        "the estimator is called ceil(STEPS / n_critic) times, the last on the evaluation pair "
        "(default: 1000); ignored by estimators without a critic",
    )
    estimate.add_argument(
        "--critic-data", choices=("fresh", "fixed"), default="fresh",
        help="what a critic trains on before the last call: a new pair from the problem at every "
        "call (fresh, the default) or the evaluation pair every time (fixed); ignored by estimators "
        "without a critic",
    )
    estimate.add_argument(
        "--param", action="append", default=[], metavar="KEY=VALUE",
        help="estimator parameter other than p (set p with --p), repeatable; VALUE is read as JSON "
        "when it parses, else as a string (for example --param blur=0.05)",
    )
    estimate.add_argument(
        "--problem-param", action="append", default=[], metavar="KEY=VALUE",
        help="problem parameter, repeatable, read like --param (for example --problem-param d=16)",
    )
    estimate.set_defaults(handler=_cmd_estimate)
    _add_train_parser(commands)
    return parser


def _configure_logging(verbose: int) -> None:
    level = logging.WARNING
    if verbose == 1:
        level = logging.INFO
    elif verbose > 1:
        level = logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


def _cmd_run(args: argparse.Namespace) -> int:
    from otbench.bench import load_suite, run_suite

    suite = load_suite(args.suite)
    out = args.out if args.out is not None else Path("runs") / suite.name
    progress = _Progress(enabled=not args.no_progress)
    command = ["otbench", *sys.argv[1:]] if sys.argv else None
    try:
        summary = run_suite(
            suite,
            out,
            workers=args.workers,
            resume=args.resume,
            callback=progress,
            command=command,
            log_level=logging.getLogger().level if args.verbose else None,
        )
    except KeyboardInterrupt:
        progress.close()
        resume = shlex.join(["otbench", "run", str(args.suite), "--out", str(out), "--resume"])
        print(
            f"otbench: interrupted; finished cells are kept in {out / 'records.jsonl'}. "
            f"Resume with: {resume}",
            file=sys.stderr,
        )
        return _EXIT_INTERRUPTED
    progress.close()

    print(f"run folder: {summary.run_dir}")
    print(f"cells: {_summary_line(summary)}")
    if args.report:
        path = _write_report(summary.run_dir)
        if path is not None:
            print(f"report: {path}")
    return 0


def _summary_line(summary: Any) -> str:
    parts = [f"{count} {status}" for status, count in sorted(summary.counts.items())]
    if summary.already_done:
        parts.append(f"{summary.already_done} recorded earlier")
    if summary.skipped:
        noun = "combination" if summary.skipped == 1 else "combinations"
        parts.append(f"{summary.skipped} {noun} skipped (see resolved.json)")
    return ", ".join(parts) if parts else "nothing to run"


def _write_report(run_dir: Path) -> Path | None:
    try:
        from otbench.report import write_report
    except ImportError as error:
        print(f"otbench: no report written: otbench.report is unavailable ({error})", file=sys.stderr)
        return None
    return Path(write_report(run_dir))


class _Progress:
    """A tqdm bar over cells, with status counts in its postfix."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.bar: Any = None
        self.counts: Counter[str] = Counter()

    def __call__(self, event: str, info: dict[str, Any]) -> None:
        if event == "start":
            if info["already_done"]:
                print(f"resuming: {info['already_done']} of {info['cells']} cells already recorded")
            if self.enabled and info["to_run"]:
                from tqdm import tqdm

                self.bar = tqdm(total=info["to_run"], unit="cell", desc=Path(info["run_dir"]).name)
        elif event == "cell_finished":
            self.counts[info["record"]["status"]] += 1
            if self.bar is not None:
                self.bar.set_postfix(dict(sorted(self.counts.items())), refresh=False)
                self.bar.update(1)
        elif event == "worker_restarted":
            logger.info("worker %s replaced by %s (%s)", info["old_pid"], info["new_pid"], info["reason"])

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _cmd_report(args: argparse.Namespace) -> int:
    records = args.run_dir / "records.jsonl"
    if not records.is_file():
        raise _UsageError(f"{records} not found; RUN must be a folder written by 'otbench run'")
    path = _write_report(args.run_dir)
    if path is None:
        return 1
    print(path)
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    import otbench
    from otbench import data, problems

    rows = []
    for name in otbench.available_estimators():
        caps = otbench.capabilities(name)
        rows.append([
            name,
            ", ".join(str(p) for p in caps.orders),
            _yes(caps.weights),
            _yes(caps.inner_loop),
            _yes(caps.exact),
            _yes(caps.scale_known),
            _yes(caps.images),
        ])
    print("Estimators")
    headers = ["name", "orders p", "weights", "inner loop", "exact", "scale known", "images"]
    print(tabulate(rows, headers=headers))
    print("scale known: no means the value is W_p only up to an unknown factor.")
    print("images: yes means (n, C, H, W) samples are kept whole instead of flattened.")

    problem_rows = [[name, ", ".join(str(p) for p in problems.problem_class(name).orders)] for name in problems.available()]
    print("\nProblems")
    print(tabulate(problem_rows, headers=["name", "true W_p known for p"]))

    print("\nData sets")
    print(tabulate([[name] for name in data.available()], headers=["name"]))
    return 0


def _cmd_estimate(args: argparse.Namespace) -> int:
    import warnings

    from tabulate import tabulate

    from otbench.bench.tasks import run_accuracy

    estimator_params = _estimator_params(args.param)
    cell = {
        "task": "accuracy",
        "estimator_name": args.name,
        "estimator_params": {**estimator_params, "p": args.p},
        "problem": args.problem,
        "problem_params": _key_values(args.problem_param, "--problem-param"),
        "n": args.n,
        "p": args.p,
        "seed": args.seed,
        "settings": {"critic_steps": args.critic_steps, "critic_data": args.critic_data},
    }
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        outcome = run_accuracy(cell)
    result = outcome.result
    truth = _number(result["truth"])
    if result.get("truth_stderr"):
        truth += f" (Monte Carlo standard error {_number(result['truth_stderr'])})"
    rows: list[list[str]] = [["estimate", _number(result["estimate"])], ["truth", truth]]
    if result["scale_known"]:
        rows.append(["relative error", _number(result["relative_error"])])
    else:
        rows.append(["ratio (scale unknown)", _number(result["ratio"])])
    if result.get("cosine") is not None:
        rows.append(["gradient cosine", _number(result["cosine"])])
    if result.get("gradient_error") is not None:
        rows.append(["gradient error", _number(result["gradient_error"])])
    rows += [
        ["inner seconds", _number(result["inner_seconds"])],
        ["samples used", str(result["samples_used"])],
        ["iterations", "n/a" if result["iterations"] is None else str(result["iterations"])],
        ["converged", "n/a" if result["converged"] is None else _yes(result["converged"])],
    ]
    problem_params = json.dumps(cell["problem_params"])
    if problem_params == "{}":
        problem_params = "(default parameters)"
    print(f"{args.name}, p={args.p}, problem {args.problem} {problem_params}, n={args.n}, seed={args.seed}")
    print(tabulate(rows, tablefmt="plain", disable_numparse=True))
    for warning in caught:
        print(f"warning: {warning.message}", file=sys.stderr)
    return 0
