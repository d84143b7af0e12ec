"""Assemble a run's report: read the records, draw the figures, write report.md and report.html."""

from __future__ import annotations

import json
import logging
import shlex
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import figures, tables
from .load import RECORDS_FILE, accuracy_frame, cost_frame, evaluations_frame, load_json, load_records, training_frame
from .render import Block, Figure, Heading, Paragraph, Table, render_html, render_markdown

__all__ = ["write_report"]

logger = logging.getLogger(__name__)

CONVENTION = (
    "Values are estimates of W_p in the units of the samples (not W_p^p), for the ground cost "
    "c(x, y) = ||x - y||_2^p. Relative error is |estimate - truth| / truth. Table cells are "
    "mean ± sample standard deviation over seeds; figures show the mean with a one-sd band "
    "and each seed as a point."
)


def write_report(run_dir: str | Path) -> Path:
    """Write ``report.md``, ``report.html`` and ``figures/*.png`` into a run folder.

    Sections for tasks without records are left out. The HTML file is
    self-contained: figures are embedded as data URIs.

    Args:
        run_dir: the run folder written by ``otbench run``.

    Returns:
        The path of ``report.md``.

    Raises:
        ValueError: ``records.jsonl`` is missing, empty or malformed.
    """
    root = Path(run_dir)
    records = load_records(root)
    environment = load_json(root / "environment.json")
    resolved = load_json(root / "resolved.json")
    accuracy, cost, training = accuracy_frame(records), cost_frame(records), training_frame(records)
    series = [name for frame in (accuracy, cost, training) if not frame.empty for name in frame["series"]]
    palette = figures.estimator_palette(series)
    figure_dir = root / "figures"

    title = f"otbench report: {root.resolve().name}"
    blocks: list[Block] = [Heading(title, level=1), Paragraph(CONVENTION)]
    blocks += _run_section(root, records, environment, resolved)
    blocks += _configuration_section(records)
    blocks += _status_section(records, resolved)
    blocks += _accuracy_section(accuracy, palette, figure_dir)
    blocks += _cost_section(cost, palette, figure_dir)
    blocks += _training_section(training, palette, figure_dir)

    markdown_path = root / "report.md"
    markdown_path.write_text(render_markdown(blocks, root), encoding="utf-8")
    (root / "report.html").write_text(render_html(blocks, root, title), encoding="utf-8")
    logger.info("wrote %s and report.html with %d records", markdown_path, len(records))
    return markdown_path


def _run_section(
    root: Path, records: pd.DataFrame, environment: dict[str, Any], resolved: dict[str, Any]
) -> list[Block]:
    command = _command(environment) or _command(resolved)
    tasks = ", ".join(f"{task} ({count})" for task, count in records["task"].value_counts().sort_index().items())
    blocks: list[Block] = [
        Heading("Run"),
        Paragraph(f"Command: {command or 'not recorded'}"),
        Paragraph(f"Records: {len(records)} in {RECORDS_FILE}; cells per task: {tasks}."),
    ]
    if environment:
        blocks += [Paragraph("Environment (environment.json):"), Table(tables.environment_table(environment))]
    else:
        blocks.append(Paragraph("Environment: environment.json is missing."))
    return blocks


def _configuration_section(records: pd.DataFrame) -> list[Block]:
    """List each estimator configuration and each task's settings, as the records give them.

    Readers comparing with POT, GeomLoss or WGAN papers need blur, n_critic,
    learning rates and critic-step budgets next to the numbers.
    """
    estimators: dict[tuple[str, str, str], set[str]] = {}
    for row in records.itertuples(index=False):
        params = getattr(row, "estimator_params", None)
        params = {k: v for k, v in params.items() if k != "p"} if isinstance(params, dict) else {}
        text = json.dumps(params, sort_keys=True) if params else "defaults"
        estimators.setdefault((str(row.estimator), str(row.estimator_name), text), set()).add(str(row.task))
    estimator_rows = [
        {"label": label, "estimator": name, "parameters (besides p)": text, "tasks": ", ".join(sorted(tasks))}
        for (label, name, text), tasks in sorted(estimators.items())
    ]
    settings_rows = []
    if "settings" in records:
        for task, group in records.groupby("task", sort=True):
            texts = sorted({json.dumps(v, sort_keys=True) for v in group["settings"] if isinstance(v, dict) and v})
            settings_rows += [{"task": task, "settings": text} for text in texts]
    blocks: list[Block] = [
        Heading("Configurations"),
        Paragraph(
            "Estimator parameters not listed keep their defaults: "
            + _estimator_defaults(sorted({str(name) for name in records["estimator_name"].dropna()}))
            + (" The trained generator uses Adam with lr 1e-3, betas (0.5, 0.9) and latent dimension 8."
               if "training" in set(records["task"]) else "")
            + " For critics, inner seconds and iterations in the accuracy table cover all critic_steps "
            "critic updates; for the other estimators they cover one call, and iterations count "
            "Sinkhorn iterations."
        ),
        Table(pd.DataFrame(estimator_rows)),
    ]
    if settings_rows:
        blocks += [Paragraph("Task settings:"), Table(pd.DataFrame(settings_rows))]
    return blocks


def _estimator_defaults(names: list[str]) -> str:
    """Return ``name: key value, ...`` for each registered estimator, from its signature's defaults.

    ``p`` is set per cell, and network, filter and memory arguments are not
    numbers a reader compares, so they are left out.
    """
    import inspect

    from ..estimators import available_estimators, estimator_class

    skip = {"self", "p", "critic", "clip_filter", "memory_budget"}
    parts = []
    for name in names:
        if name not in available_estimators():
            continue
        parameters = inspect.signature(estimator_class(name).__init__).parameters.values()
        defaults = [
            f"{parameter.name} {parameter.default}"
            for parameter in parameters
            if parameter.name not in skip and parameter.default is not inspect.Parameter.empty
        ]
        if defaults:
            parts.append(f"{name}: {', '.join(defaults)}")
    return "; ".join(parts) + "." if parts else "none recorded."


def _status_section(records: pd.DataFrame, resolved: dict[str, Any]) -> list[Block]:
    blocks: list[Block] = [
        Heading("Status"),
        Paragraph("Records per task, estimator and status."),
        Table(tables.status_table(records)),
    ]
    failures = tables.failures_table(records)
    if not failures.empty:
        blocks += [Paragraph("Cells whose status is not ok:"), Table(failures)]
    skipped = resolved.get("skipped")
    if isinstance(skipped, list) and skipped:
        blocks += [
            Heading("Skipped combinations"),
            Paragraph("Combinations of the suite that were not run, because they are invalid:"),
            Table(tables.skipped_table(skipped)),
        ]
    return blocks


def _accuracy_section(accuracy: pd.DataFrame, palette: dict[str, Any], figure_dir: Path) -> list[Block]:
    if accuracy.empty:
        return []
    table, any_ratio = tables.accuracy_table(accuracy)
    blocks: list[Block] = [
        Heading("Accuracy"),
        Paragraph(
            "Estimates against the true W_p of the two distributions the samples are drawn from. "
            "Plug-in estimators (exact, sinkhorn, sinkhorn-entropic, sliced) estimate a distance between "
            "the n-sample empirical measures; the signed bias (estimate - truth) shows how that differs "
            "from the truth as n grows. Sliced and max-sliced distances are lower bounds of W_p, so their "
            "error includes that gap. Where the problem knows its optimal transport map, cosine is the "
            "mean over source samples of the cosine between -d estimate/dx_i and the true -dW_p/dx_i, and "
            "gradient error is sum ||g - g*||^2 / sum ||g*||^2. A cosine near 1 means the estimator moves "
            "each sample in the right direction, even where its value is off."
        ),
    ]
    summary = tables.summary_table(accuracy)
    if not summary.empty:
        blocks += [
            Heading("Summary over problems", level=3),
            Paragraph(
                "Per estimator, at its most expensive configuration on each problem (the budget and n "
                "with the most inner-loop seconds), averaged over seeds: the median over problems of the "
                "relative error, ratio and gradient error, and the mean cosine. Best relative error takes "
                "each problem's most accurate configuration instead, whatever it cost."
            ),
            Table(summary),
        ]
    blocks += [Heading("Per problem, estimator, budget and n", level=3), Table(table)]
    if any_ratio:
        blocks.append(Paragraph(tables.SCALE_UNKNOWN_NOTE))
    ratio_path = figures.ratio_vs_n(accuracy, palette, figure_dir / "ratio_vs_n.png")
    left_out = _scale_unknown_note(accuracy, ratio_drawn=ratio_path is not None)
    front = (
        " Markers are configurations (mean over seeds), faint points single seeds, and each line is the "
        "estimator's Pareto front: the configurations that no cheaper configuration of it beats."
    )
    drawn = [
        (figures.accuracy_vs_seconds(accuracy, palette, figure_dir / "error_vs_seconds.png"),
         "Relative error against inner-loop seconds (log-log), per problem." + front + left_out),
        (figures.accuracy_vs_seconds(accuracy, palette, figure_dir / "cosine_vs_seconds.png", metric="cosine"),
         "Mean cosine between the estimated and the true gradient against inner-loop seconds, per problem "
         "with a known transport map." + front + " Weight-clipped critics are included: the cosine "
         "does not depend on the scale."),
        (figures.accuracy_vs_n(accuracy, palette, figure_dir / "accuracy_vs_n.png"),
         "Relative error against n (log-log), per problem, each estimator at the configuration run at the "
         "most sizes." + left_out),
        (figures.bias_vs_n(accuracy, palette, figure_dir / "bias_vs_n.png"),
         "Signed relative bias (estimate - truth) / truth against n, per problem, at the same configurations: "
         "above 0 the estimator overestimates W_p. The exact LP's bias on n samples is the plug-in bias that "
         "grows with d."),
        (ratio_path,
         "Ratio estimate / truth against n (log-log) for estimators whose scale is unknown, per problem. "
         "The ratio is not expected to be 1: a flat line with a narrow band means a stable unknown factor."),
    ]
    return blocks + [Figure(path, caption) for path, caption in drawn if path is not None]


def _scale_unknown_note(accuracy: pd.DataFrame, *, ratio_drawn: bool) -> str:
    """Return a caption sentence naming the estimators left out of the relative-error figures, or ''."""
    names = sorted(accuracy.loc[~accuracy["scale_known"], "series"].unique())
    if not names:
        return ""
    where = "the table and the ratio figure below" if ratio_drawn else "the table"
    return (
        f" Not drawn: {', '.join(names)}, whose scale is unknown, so relative error does not apply; "
        f"{where} give the ratio estimate / truth instead."
    )


def _cost_section(cost: pd.DataFrame, palette: dict[str, Any], figure_dir: Path) -> list[Block]:
    if cost.empty:
        return []
    blocks: list[Block] = [
        Heading("Cost"),
        Paragraph(
            "Seconds per estimator call: the median over timed calls of each cell, then mean ± sd over seeds. "
            "Call seconds include the backward pass."
        ),
        Table(tables.cost_table(cost)),
    ]
    blocks += _memory_notes(cost)
    path = figures.cost_vs_n(cost, palette, figure_dir / "cost_vs_n.png")
    if path is not None:
        blocks.append(Figure(
            path,
            "Median inner-loop seconds per call against n (log-log), per d. Below, where recorded: peak memory "
            f"added against n, on an axis that is linear below {figures.MEMORY_LINEAR_MIB:g} MiB and logarithmic "
            "above, so that cells with no measurable increase show at 0.",
        ))
    return blocks


def _memory_notes(cost: pd.DataFrame) -> list[Block]:
    """Explain the peak-memory column and name the cells where it is 0 or missing."""
    memory = cost["peak_memory_bytes"]
    if memory.isna().all():
        return [Paragraph("Peak memory was not recorded: it cannot be read on this platform.")]
    notes = [
        "Peak memory added is the peak during the timed calls minus the memory in use before them "
        "(CPU: Linux peak resident set size; CUDA: maximum allocated memory). Memory that torch reuses "
        "from the warm-up call or keeps cached is not counted, so small allocations can read as 0."
    ]
    zero = cost[memory == 0]
    if not zero.empty:
        notes.append(
            f"No measurable increase (0 MiB) in {len(zero)} of {len(cost)} cells: {_sizes_by_series(zero)}."
        )
    missing = cost[memory.isna()]
    if not missing.empty:
        notes.append(f"No memory value in {len(missing)} of {len(cost)} cells: {_sizes_by_series(missing)}.")
    return [Paragraph(" ".join(notes))]


def _sizes_by_series(cells: pd.DataFrame) -> str:
    """Return a list such as ``exact at n = 256, 512; sinkhorn at n = 256`` (with d where cells differ in d)."""
    with_d = cells["d"].nunique(dropna=False) > 1
    parts = []
    for series, group in cells.groupby("series", sort=True):
        pairs = group[["d", "n"]].astype(float).drop_duplicates().sort_values(["d", "n"])
        listed = ", ".join(
            f"{_plain(n)} (d={_plain(d)})" if with_d else _plain(n) for d, n in zip(pairs["d"], pairs["n"])
        )
        parts.append(f"{series} at n = {listed}")
    return "; ".join(parts)


def _plain(value: Any) -> str:
    """Format a size from a record: 256.0 as 256, null as '?'."""
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "?"
    return str(int(value)) if isinstance(value, (int, float)) and float(value).is_integer() else str(value)


def _training_section(training: pd.DataFrame, palette: dict[str, Any], figure_dir: Path) -> list[Block]:
    if training.empty:
        return []
    blocks: list[Block] = [
        Heading("Training"),
        Paragraph(
            "Metrics at the last evaluation, mean ± sd over seeds. w2_heldout is the exact W_2 "
            "(POT's LP, in the units of the data) between generator samples and held-out data, "
            "whatever the order p of the training loss. hq_fraction is the fraction of samples within "
            "3 standard deviations of a mode, and modes_covered counts the modes (8 for 8gaussians, "
            "25 for 25gaussians) holding at least 1% of the samples as high-quality samples. "
            "Training seconds exclude evaluation; total inner seconds is the time spent in the "
            "estimator's inner loop."
        ),
        Table(tables.training_table(training)),
    ]
    blocks += _classifier_notes(training)
    evaluations = evaluations_frame(training)
    drawn = [
        (figures.quality_vs_steps(evaluations, palette, figure_dir / "quality_vs_steps.png"),
         "Sample quality against generator steps, per data set."),
        (figures.quality_vs_time(evaluations, palette, figure_dir / "quality_vs_time.png"),
         "Sample quality against training seconds (evaluation excluded), one line per seed."),
    ]
    for data in sorted(training["data"].dropna().unique()):
        path = figure_dir / f"samples_{figures.safe_name(str(data))}.png"
        drawn.append((figures.samples_figure(training, data, palette, path, _heldout(data)),
                      f"Generator samples from the fixed noise at the last step: {data}."))
    return blocks + [Figure(path, caption) for path, caption in drawn if path is not None]


def _classifier_notes(training: pd.DataFrame) -> list[Block]:
    """State, once per data set, the held-out accuracy of the classifier behind ``frechet_distance``.

    The accuracy is a property of the fixed feature classifier, the same for
    every estimator, so the training table leaves it out.
    """
    column = "final.classifier_accuracy"
    if column not in training:
        return []
    blocks: list[Block] = []
    for data, group in training.groupby("data", sort=True):
        values = sorted({round(float(v), 4) for v in group[column] if np.isfinite(v)})
        if not values:
            continue
        accuracy = f"{values[0]:.4g}" if len(values) == 1 else f"{values[0]:.4g} to {values[-1]:.4g}"
        blocks.append(Paragraph(
            f"{data}: frechet_distance is the squared Fréchet distance (the FID convention, "
            f"||m_1 - m_2||^2 + tr(...)) between Gaussians fitted to the features of a {data} "
            f"classifier with held-out accuracy {accuracy}."
        ))
    return blocks


def _heldout(name: str) -> np.ndarray | None:
    """Return the held-out samples of data set ``name``, or None where it cannot be loaded."""
    try:
        from ..data import load
    except ImportError as error:
        logger.warning("drawing samples of %r without held-out data: otbench.data is unavailable (%s)", name, error)
        return None
    try:
        test = load(name).test
    except ValueError as error:
        logger.warning("drawing samples of %r without held-out data: %s", name, error)
        return None
    return np.asarray(test.detach().cpu() if hasattr(test, "detach") else test, dtype=float)


def _command(source: dict[str, Any]) -> str | None:
    for key in ("command", "argv"):
        value = source.get(key)
        if isinstance(value, str) and value:
            return value
        if isinstance(value, list) and value:
            return shlex.join(str(part) for part in value)
    return None
