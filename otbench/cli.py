"""The ``otbench`` command: run suites, write reports, list components, estimate one distance, train a generator.

User mistakes (an invalid suite, option or value) print one line
``otbench: error: ...`` to stderr and exit with status 2, without a traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import shlex
import shutil
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["main"]

logger = logging.getLogger("otbench.cli")

_EXIT_FAILURE = 1
_EXIT_USAGE = 2
_EXIT_INTERRUPTED = 130


class _UsageError(Exception):
    """A user mistake found by the CLI itself."""


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
        "the estimator is called ceil(STEPS / n_critic) times on the same pair (default: 1000); "
        "ignored by estimators without a critic",
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


def _add_train_parser(commands: Any) -> None:
    defaults = _trainer_defaults()
    train = commands.add_parser(
        "train", help="train one generator with one estimator as the loss",
        description="Train a generator on a data set by minimising one estimator's W_p estimate, "
        "print its sample quality as it is evaluated, and optionally write the history, "
        "evaluations, configuration and final samples into a folder.",
    )

    train.add_argument("name", metavar="NAME", help="estimator name, the loss (see 'otbench list')")
    train.add_argument("--data", required=True, help="training data set name (see 'otbench list')")
    train.add_argument("--p", type=int, default=1, help="order p of W_p, 1 or 2 (default: 1)")
    train.add_argument(
        "--steps", type=_positive_int, default=defaults["steps"], metavar="N",
        help=f"number of generator steps, each one Adam update of the generator (default: {defaults['steps']})",
    )
    train.add_argument(
        "--batch-size", type=_positive_int, default=defaults["batch_size"], metavar="N",
        help="samples per side at each generator step: data batch and generator batch "
        f"(default: {defaults['batch_size']})",
    )
    train.add_argument(
        "--lr", type=_positive_float, default=defaults["lr"], metavar="LR",
        help=f"Adam learning rate of the generator (default: {defaults['lr']:g}); "
        "a critic's own learning rate is the estimator parameter lr (--param lr=...)",
    )
    train.add_argument(
        "--eval-every", type=_positive_int, default=defaults["eval_every"], metavar="N",
        help="evaluate sample quality every N generator steps; step 0 and the last step are "
        f"always evaluated (default: {defaults['eval_every']})",
    )
    train.add_argument(
        "--n-eval", type=_positive_int, default=defaults["n_eval"], metavar="N",
        help=f"generator samples drawn for each evaluation (default: {defaults['n_eval']})",
    )
    train.add_argument(
        "--seed", type=_non_negative_int, default=defaults["seed"], metavar="S",
        help="seed of the generator and critic initialisation, data batches and noise "
        f"(default: {defaults['seed']})",
    )
    train.add_argument(
        "--param", action="append", default=[], metavar="KEY=VALUE",
        help="estimator parameter other than p (set p with --p), repeatable; VALUE is read as JSON "
        "when it parses, else as a string (for example --param blur=0.05 or --param n_critic=5)",
    )
    train.add_argument(
        "--out", type=Path, default=None, metavar="DIR",
        help="write history.csv (one row per generator step), evaluations.csv, config.json and "
        "samples.png into DIR, which must be new or empty (default: write nothing)",
    )
    train.add_argument(
        "--no-progress", action="store_true", help="hide the progress bar (for logs and CI)"
    )

    train.set_defaults(handler=_cmd_train)


def _trainer_defaults() -> dict[str, Any]:
    """Return the default of each keyword argument of ``otbench.train.Trainer``."""
    import inspect

    from otbench.train import Trainer

    parameters = inspect.signature(Trainer).parameters
    return {name: parameter.default for name, parameter in parameters.items()}


def _positive_int(text: str) -> int:
    value = _parse_int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"invalid value {text!r}; expected a positive integer")
    return value


def _non_negative_int(text: str) -> int:
    value = _parse_int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"invalid value {text!r}; expected a non-negative integer")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid value {text!r}; expected a number") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"invalid value {text!r}; expected a positive finite number")
    return value


def _parse_int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid value {text!r}; expected an integer") from None


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
        parts.append(f"{summary.skipped} combinations skipped (see resolved.json)")
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


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


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
        "settings": {"critic_steps": args.critic_steps},
    }
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        outcome = run_accuracy(cell)
    result = outcome.result
    rows: list[list[str]] = [["estimate", _number(result["estimate"])], ["truth", _number(result["truth"])]]
    if result["scale_known"]:
        rows.append(["relative error", _number(result["relative_error"])])
    else:
        rows.append(["ratio (scale unknown)", _number(result["ratio"])])
    rows += [
        ["inner seconds", _number(result["inner_seconds"])],
        ["iterations", "n/a" if result["iterations"] is None else str(result["iterations"])],
        ["converged", "n/a" if result["converged"] is None else _yes(result["converged"])],
    ]
    problem_params = json.dumps(cell["problem_params"])
    print(f"{args.name}, p={args.p}, problem {args.problem} {problem_params}, n={args.n}, seed={args.seed}")
    print(tabulate(rows, tablefmt="plain", disable_numparse=True))
    for warning in caught:
        print(f"warning: {warning.message}", file=sys.stderr)
    return 0


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.6g}"


def _estimator_params(items: Sequence[str]) -> dict[str, Any]:
    """Parse the ``--param`` values, which may set any estimator parameter except the order p."""
    params = _key_values(items, "--param")
    if "p" in params:
        raise _UsageError("--param p is not allowed because --p sets the order; use --p, for example --p 2")
    return params


def _key_values(items: Sequence[str], option: str) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise _UsageError(f"{option} {item!r} is invalid; expected KEY=VALUE, for example blur=0.05")
        try:
            values[key] = json.loads(text)
        except json.JSONDecodeError:
            values[key] = text
    return values


def _cmd_train(args: argparse.Namespace) -> int:
    estimator_params = _estimator_params(args.param)
    if args.out is not None:
        _check_new_folder(args.out)
    progress = _TrainingProgress(args.steps, enabled=not args.no_progress)
    try:
        return _train(args, estimator_params, progress)
    except KeyboardInterrupt:
        progress.close()
        print(
            f"otbench: interrupted at generator step {progress.step} of {args.steps}; "
            f"no results were written",
            file=sys.stderr,
        )
        return _EXIT_INTERRUPTED


def _train(args: argparse.Namespace, estimator_params: dict[str, Any], progress: _TrainingProgress) -> int:
    import torch
    from tabulate import tabulate

    import otbench
    from otbench import data
    from otbench.train import Trainer

    dataset = data.load(args.data)
    # The seed also fixes the initialisation of an estimator that builds its network when created.
    torch.manual_seed(args.seed)
    estimator = otbench.estimator(args.name, **estimator_params, p=args.p)
    trainer = Trainer(
        estimator,
        dataset,
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        eval_every=args.eval_every,
        n_eval=args.n_eval,
        seed=args.seed,
        callback=progress,
    )
    print(f"training with {args.name} ({estimator.extra_repr()}) on {args.data}, seed {args.seed}")
    progress.open(f"{args.name} on {args.data}")
    try:
        result = trainer.run()
    except (FloatingPointError, ValueError) as error:
        # The options were valid, so a NaN loss or NaN samples mean that the run diverged.
        progress.close()
        print(
            f"otbench: error: training failed after {progress.step} of {args.steps} generator steps: {error}",
            file=sys.stderr,
        )
        return _EXIT_FAILURE
    progress.close()

    inner_seconds = sum(step.inner_seconds for step in result.steps)
    training_seconds = result.steps[-1].elapsed_seconds
    rows = [[key, _number(value)] for key, value in result.final.items()]
    rows += [
        ["inner-loop seconds (total)", _number(inner_seconds)],
        ["training seconds (total, evaluation excluded)", _number(training_seconds)],
    ]
    print(f"final metrics after {args.steps} generator steps")
    print(tabulate(rows, tablefmt="plain", disable_numparse=True))

    if args.out is not None:
        config = _training_config(args, estimator_params, estimator, trainer)
        _write_training(args.out, result, config, args.name, dataset)
        print(f"results: {args.out}")
    return 0


class _TrainingProgress:
    """A tqdm bar over generator steps, fed by the trainer's callback, which also prints each evaluation."""

    def __init__(self, steps: int, enabled: bool) -> None:
        self.steps = steps
        self.enabled = enabled
        self.step = 0
        self.bar: Any = None

    def open(self, description: str) -> None:
        if self.enabled:
            from tqdm import tqdm

            self.bar = tqdm(total=self.steps, unit="step", desc=description)

    def __call__(self, event: str, row: dict[str, Any]) -> None:
        from tqdm import tqdm

        if event == "step":
            self.step = int(row["step"])
            if self.bar is not None:
                postfix = {"loss": f"{row['loss']:.4g}", "inner_s": f"{row['inner_seconds']:.3g}"}
                self.bar.set_postfix(postfix, refresh=False)
                self.bar.update(1)
        elif event == "eval":
            metrics = ", ".join(
                f"{key}={_number(value)}" for key, value in row.items() if key not in ("step", "elapsed_seconds")
            )
            seconds = row["elapsed_seconds"]
            line = f"eval at step {int(row['step'])}/{self.steps} ({seconds:.3g} training seconds): {metrics}"
            # tqdm.write prints above the bar instead of through it.
            tqdm.write(line, file=sys.stdout)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _check_new_folder(path: Path) -> None:
    """Raise ``_UsageError`` unless ``path`` is a missing or empty folder that can be created."""
    if path.exists():
        if not path.is_dir():
            raise _UsageError(f"--out {path} is not a folder; choose a new or empty folder")
        if any(path.iterdir()):
            raise _UsageError(
                f"--out {path} is not empty; choose a new or empty folder, "
                f"because results are never written over other files"
            )
        return
    for parent in path.absolute().parents:
        if parent.exists():
            if not parent.is_dir():
                raise _UsageError(f"--out {path} cannot be created: {parent} is not a folder")
            return


def _training_config(
    args: argparse.Namespace, estimator_params: dict[str, Any], estimator: Any, trainer: Any
) -> dict[str, Any]:
    """Return the configuration of a training run: options, resolved estimator parameters, trainer and environment."""
    import torch

    from otbench.bench.environment import collect_environment

    return {
        "estimator": args.name,
        "data": args.data,
        "p": args.p,
        "seed": args.seed,
        "steps": args.steps,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "eval_every": args.eval_every,
        "n_eval": args.n_eval,
        "params": estimator_params,
        "estimator_params": estimator.config(),
        "trainer": {
            "betas": list(trainer.betas),
            "n_snapshot": trainer.n_snapshot,
            "latent_dim": trainer.latent_dim,
        },
        "environment": collect_environment(
            workers=1, threads_per_worker=torch.get_num_threads(), command=args.command_line
        ),
    }


def _write_training(out: Path, result: Any, config: dict[str, Any], name: str, dataset: Any) -> None:
    """Write the results of a training run into the new folder ``out``.

    The files are written into a hidden sibling folder that is renamed to
    ``out`` at the end, so an interrupted or failed write leaves no folder
    that looks complete.
    """
    import dataclasses

    import pandas as pd

    out = out.absolute()
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.parent / f".{out.name}.partial-{os.getpid()}"
    staging.mkdir()
    try:
        pd.DataFrame([dataclasses.asdict(step) for step in result.steps]).to_csv(
            staging / "history.csv", index=False
        )
        pd.DataFrame(result.evaluations).to_csv(staging / "evaluations.csv", index=False)
        (staging / "config.json").write_text(json.dumps(config, indent=2, default=str) + "\n")
        _draw_final_samples(staging / "samples.png", result, config, name, dataset)
        # rename(2) also replaces an empty folder, which _check_new_folder allowed.
        staging.replace(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _draw_final_samples(path: Path, result: Any, config: dict[str, Any], name: str, dataset: Any) -> None:
    """Draw the last snapshot with the report's sample figure, over the held-out data for 2-D data sets."""
    import pandas as pd

    from otbench.report import figures

    last = max(result.snapshots)
    series = f"{name} (p={config['p']})"
    frame = pd.DataFrame([{
        "data": config["data"],
        "seed": config["seed"],
        "series": series,
        "snapshot": result.snapshots[last].numpy().tolist(),
    }])
    heldout = dataset.test.detach().cpu().numpy()
    figures.samples_figure(frame, config["data"], figures.estimator_palette([series]), path, heldout)


if __name__ == "__main__":
    sys.exit(main())
