"""The ``otbench train`` subcommand: one generator, one estimator as its loss."""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from .common import (
    _EXIT_FAILURE,
    _EXIT_INTERRUPTED,
    _UsageError,
    _estimator_params,
    _non_negative_int,
    _number,
    _positive_float,
    _positive_int,
)

logger = logging.getLogger("otbench.cli")

# Evaluation keys that describe the metric itself, not the samples: the digits
# classifier's held-out accuracy is the same at every step. They stay in the CSV.
_CONTEXT_METRICS = ("classifier_accuracy",)


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
    rows = [[key, _number(value)] for key, value in result.final.items() if key not in _CONTEXT_METRICS]
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
                f"{key}={_number(value)}" for key, value in row.items()
                if key not in ("step", "elapsed_seconds", *_CONTEXT_METRICS)
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
