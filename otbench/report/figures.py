"""Seaborn figures of a run, written as PNG files.

Lines and colours are per series: the estimator's label, with the order p
appended where one label runs with several p (see ``load.add_series``).
Every figure shows the spread across seeds: lines are means with a band of
one standard deviation, and the points behind them are single seeds. The
figures are drawn with matplotlib's Agg backend, so no display is needed.
Each function returns the path it wrote, or None when the frame contains
nothing to draw.
"""

from __future__ import annotations

import colorsys
import logging
import math
import re
import textwrap
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.legend import Legend  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from .axes import format_log_axis, format_symlog_axis, tick_at_sizes  # noqa: E402

__all__ = [
    "accuracy_vs_n",
    "accuracy_vs_seconds",
    "bias_vs_n",
    "n_sweep",
    "pareto_front",
    "ratio_vs_n",
    "cost_vs_n",
    "estimator_palette",
    "quality_vs_steps",
    "quality_vs_time",
    "samples_figure",
]

logger = logging.getLogger(__name__)

# Metrics drawn in the quality figures, with their axis labels and scales.
QUALITY_METRICS = {"w2_heldout": ("W_2 to held-out data", "log"), "hq_fraction": ("high-quality fraction", "linear")}

DPI = 110
PANEL_SIZE = (3.6, 3.0)
MAX_COLUMNS = 3
# Width in inches added for the legend on the right, and the minimum figure
# width, so that a one-panel figure keeps a panel wide enough for its title.
LEGEND_WIDTH = 1.9
MIN_WIDTH = 6.4

# Peak memory below this many MiB is drawn on a linear scale, above it on a log scale.
MEMORY_LINEAR_MIB = 1.0

_ORDER_SUFFIX = re.compile(r"^(?P<estimator>.*) \(p=(?P<p>[^)]*)\)$")


def estimator_palette(series: Sequence[str]) -> dict[str, Any]:
    """Return one colour per series, built once for the whole report.

    Each estimator label gets its own hue. Where a label runs with several p,
    its series ``"label (p=k)"`` get shades of that hue, darker for smaller p.
    So an estimator keeps its hue in every figure, split by p or not.

    Args:
        series: every series name of every task (see ``load.add_series``).
    """
    by_estimator: dict[str, list[str]] = {}
    for name in sorted(set(series)):
        by_estimator.setdefault(_estimator_of(name), []).append(name)
    count = max(len(by_estimator), 1)
    hues = sns.color_palette("tab10" if count <= 10 else "husl", count)
    palette: dict[str, Any] = {}
    for (estimator, names), colour in zip(sorted(by_estimator.items()), hues):
        variants = sorted((name for name in names if name != estimator), key=_order_key)
        palette[estimator] = tuple(colour)
        for name, shade in zip(variants, _shades(colour, len(variants))):
            palette[name] = shade
    return palette


def _estimator_of(series: str) -> str:
    match = _ORDER_SUFFIX.match(series)
    return match.group("estimator") if match else series


def _order_key(series: str) -> tuple[float, str]:
    match = _ORDER_SUFFIX.match(series)
    try:
        return (float(match.group("p")) if match else math.inf, series)
    except ValueError:
        return (math.inf, series)


def _shades(colour: Sequence[float], count: int) -> list[tuple[float, float, float]]:
    """Return ``count`` shades of ``colour`` from darker to lighter, by changing its lightness."""
    if count <= 1:
        return [tuple(colour)] * count  # type: ignore[list-item]
    hue, lightness, saturation = colorsys.rgb_to_hls(*colour[:3])
    levels = np.linspace(max(lightness - 0.13, 0.2), min(lightness + 0.2, 0.8), count)
    return [colorsys.hls_to_rgb(hue, float(level), saturation) for level in levels]


def accuracy_vs_n(accuracy: pd.DataFrame, palette: dict[str, Any], path: Path) -> Path | None:
    """Draw relative error against n, one panel per problem, log-log.

    Each series is drawn at one configuration per problem: the budget run at
    the most sizes n (the suite's sample-size sweep). Estimators whose scale
    is unknown (weight-clipped critics) have no relative error and are left
    out; ``ratio_vs_n`` draws them.
    """
    # NOTE: a relative error of exactly 0 cannot be drawn on the log axis, so
    # such cells are left out of the figure. The table still counts them.
    frame = n_sweep(accuracy[accuracy["scale_known"] & (accuracy["relative_error"] > 0)])
    if frame.empty:
        return None
    problems = sorted(frame["problem_label"].unique(), key=_natural_key)
    fig, axes = _panels(len(problems))
    for ax, problem in zip(axes, problems):
        data = frame[frame["problem_label"] == problem]
        _line_with_seeds(ax, data, "n", "relative_error", palette)
        ax.set(xscale="log", yscale="log", title=_wrap(problem), xlabel="n (samples per side)", ylabel="relative error")
        tick_at_sizes(ax, data["n"])
        format_log_axis(ax, "y")
    return _save(fig, path, palette, frame["series"].unique())


def bias_vs_n(accuracy: pd.DataFrame, palette: dict[str, Any], path: Path) -> Path | None:
    """Draw the signed relative bias (estimate - truth) / truth against n, one panel per problem.

    The configurations are those of ``accuracy_vs_n``. A plug-in estimator's
    line shows how its bias on n samples shrinks. Its sign shows whether it
    over- or underestimates, and the grey line marks no bias.
    """
    frame = n_sweep(accuracy[accuracy["scale_known"] & accuracy["bias"].notna()]).copy()
    if frame.empty:
        return None
    frame["relative_bias"] = frame["bias"] / frame["truth"]
    problems = sorted(frame["problem_label"].unique(), key=_natural_key)
    fig, axes = _panels(len(problems))
    for ax, problem in zip(axes, problems):
        data = frame[frame["problem_label"] == problem]
        ax.axhline(0.0, color="0.6", linewidth=0.8, zorder=0)
        _line_with_seeds(ax, data, "n", "relative_bias", palette)
        ax.set(xscale="log", title=_wrap(problem), xlabel="n (samples per side)",
               ylabel="(estimate - truth) / truth")
        tick_at_sizes(ax, data["n"])
    return _save(fig, path, palette, frame["series"].unique())


def n_sweep(accuracy: pd.DataFrame) -> pd.DataFrame:
    """Keep, per series and problem, the cells of the budget that was run at the most sizes n.

    Ties go to the budget with the most inner-loop seconds. Only budgets run
    at two sizes or more are kept, so a pure budget sweep at one n draws
    nothing here.
    """
    if accuracy.empty:
        return accuracy
    sizes = accuracy.groupby(["series", "problem_label", "budget_label"], dropna=False)["n"].nunique().reset_index()
    sizes = sizes[sizes["n"] >= 2]
    if sizes.empty:
        return accuracy.iloc[0:0]
    seconds = accuracy.groupby(["series", "problem_label", "budget_label"], dropna=False)["inner_seconds"].mean()
    sizes = sizes.join(seconds, on=["series", "problem_label", "budget_label"])
    # Among budgets run at equally many sizes, keep the most expensive, as the summary table does.
    sizes = sizes.sort_values(["n", "inner_seconds"], ascending=False)
    best = sizes.drop_duplicates(["series", "problem_label"])
    return accuracy.merge(best[["series", "problem_label", "budget_label"]], how="inner")


def ratio_vs_n(accuracy: pd.DataFrame, palette: dict[str, Any], path: Path) -> Path | None:
    """Draw the ratio estimate / truth against n for estimators whose scale is unknown, log-log.

    Such an estimator (a weight-clipped critic) returns W_1 times an unknown
    factor, so its ratio is not expected to be 1. A flat line means that the
    factor is stable across n, and a narrow band that it is stable across seeds.
    """
    frame = accuracy[~accuracy["scale_known"]].copy()
    frame["ratio"] = frame["ratio"].fillna(frame["estimate"] / frame["truth"])
    frame = n_sweep(frame[frame["ratio"] > 0])
    if frame.empty:
        return None
    problems = sorted(frame["problem_label"].unique())
    fig, axes = _panels(len(problems))
    for ax, problem in zip(axes, problems):
        data = frame[frame["problem_label"] == problem]
        _line_with_seeds(ax, data, "n", "ratio", palette)
        ax.set(xscale="log", yscale="log", title=_wrap(problem), xlabel="n (samples per side)",
               ylabel="ratio estimate / truth")
        tick_at_sizes(ax, data["n"])
        format_log_axis(ax, "y")
    return _save(fig, path, palette, frame["series"].unique())


# Trade-off metrics: column, axis label, log scale, and whether larger is better.
TRADEOFF_METRICS = {
    "relative_error": ("relative error", True, False),
    "cosine": ("mean cosine to the true gradient", False, True),
}


def accuracy_vs_seconds(
    accuracy: pd.DataFrame, palette: dict[str, Any], path: Path, metric: str = "relative_error"
) -> Path | None:
    """Draw a metric against inner-loop seconds with each estimator's Pareto front, one panel per problem.

    A configuration is one point of an estimator's sweep (budget and n). Its
    marker is the mean over seeds, and the faint points behind are the seeds.
    The line joins the configurations that no cheaper configuration of the
    same estimator beats: its Pareto front, drawn as a staircase. ``metric``
    is ``relative_error`` (lower is better; log scale; estimators whose scale
    is unknown are left out) or ``cosine`` (higher is better; every estimator).
    """
    label, log_scale, higher_better = TRADEOFF_METRICS[metric]
    keep = accuracy[metric].notna() & (accuracy["inner_seconds"] > 0)
    if metric == "relative_error":
        keep &= accuracy["scale_known"] & (accuracy[metric] > 0)
    frame = accuracy[keep]
    if frame.empty:
        return None
    problems = sorted(frame["problem_label"].unique(), key=_natural_key)
    fig, axes = _panels(len(problems))
    for ax, problem in zip(axes, problems):
        data = frame[frame["problem_label"] == problem]
        sns.scatterplot(
            data=data, x="inner_seconds", y=metric, hue="series",
            palette=palette, alpha=0.25, s=10, legend=False, ax=ax,
        )
        means = data.groupby(["series", "budget_label", "n"], as_index=False)[["inner_seconds", metric]].mean()
        for series, points in means.groupby("series"):
            colour = palette[series]
            ax.scatter(points["inner_seconds"], points[metric], color=colour, s=22, edgecolor="white", linewidth=0.5)
            front = pareto_front(points["inner_seconds"], points[metric], higher_better=higher_better)
            ax.plot(front["inner_seconds"], front["value"], color=colour, drawstyle="steps-post", linewidth=1.4)
        ax.set(xscale="log", title=_wrap(problem), xlabel="inner-loop seconds", ylabel=label)
        format_log_axis(ax, "x", decades_only=True)
        if log_scale:
            ax.set_yscale("log")
            format_log_axis(ax, "y")
        else:
            ax.axhline(0.0, color="0.7", linewidth=0.6, zorder=0)
    return _save(fig, path, palette, frame["series"].unique())


def pareto_front(seconds: Iterable[float], values: Iterable[float], *, higher_better: bool = False) -> pd.DataFrame:
    """Return the points that no cheaper point beats, sorted by seconds.

    A point is on the front when every point with fewer seconds has a worse
    value (larger, or smaller when ``higher_better``). Ties in seconds keep
    the better value.

    Returns:
        Columns ``inner_seconds`` and ``value``.
    """
    points = pd.DataFrame({"inner_seconds": list(seconds), "value": list(values)}).dropna()
    sign = -1.0 if higher_better else 1.0
    points = points.assign(key=sign * points["value"]).sort_values(["inner_seconds", "key"])
    front_points, best = [], math.inf
    for row in points.itertuples(index=False):
        if row.key < best:
            front_points.append((row.inner_seconds, row.value))
            best = row.key
    return pd.DataFrame(front_points, columns=["inner_seconds", "value"])


def cost_vs_n(cost: pd.DataFrame, palette: dict[str, Any], path: Path) -> Path | None:
    """Draw median inner-loop seconds against n, one panel per d, log-log.

    A second row shows peak memory against n where the records have it, on a
    symmetric log axis (linear below ``MEMORY_LINEAR_MIB``) so that cells
    with no measurable increase stay visible at 0. Cells without a memory
    value are left out of that row.
    """
    frame = cost[cost["inner_seconds_median"] > 0].copy()
    if frame.empty:
        return None
    frame["d_label"] = frame["d"].map(lambda d: f"d={int(d)}" if _finite(d) else "d unknown")
    labels = sorted(frame["d_label"].unique(), key=_natural_key)
    has_memory = bool(frame["peak_memory_bytes"].notna().any())
    fig, grid = _grid(2 if has_memory else 1, len(labels))
    for column, label in enumerate(labels):
        data = frame[frame["d_label"] == label]
        ax = grid[0][column]
        _line_with_seeds(ax, data, "n", "inner_seconds_median", palette)
        ax.set(xscale="log", yscale="log", title=_wrap(label), xlabel="n (samples per side)",
               ylabel="inner-loop seconds per call (median)")
        tick_at_sizes(ax, data["n"])
        format_log_axis(ax, "y", decades_only=True)
        if has_memory:
            ax = grid[1][column]
            memory = data[data["peak_memory_bytes"].notna()]
            memory = memory.assign(peak_mib=memory["peak_memory_bytes"] / 2**20)
            if memory.empty:
                ax.set_axis_off()
                continue
            _line_with_seeds(ax, memory, "n", "peak_mib", palette)
            ax.set(xscale="log", xlabel="n (samples per side)", ylabel="peak memory added (MiB)")
            format_symlog_axis(ax, "y", MEMORY_LINEAR_MIB)
            tick_at_sizes(ax, memory["n"])
    return _save(fig, path, palette, frame["series"].unique())


def quality_vs_steps(evaluations: pd.DataFrame, palette: dict[str, Any], path: Path) -> Path | None:
    """Draw sample-quality metrics against generator steps, one column per data set."""
    return _quality(evaluations, palette, path, x="step", xlabel="generator step")


def quality_vs_time(evaluations: pd.DataFrame, palette: dict[str, Any], path: Path) -> Path | None:
    """Draw sample-quality metrics against training seconds (evaluation excluded), one line per cell.

    Cells reach a given step at different times, so the lines are not
    averaged: each seed is its own line.
    """
    return _quality(evaluations, palette, path, x="elapsed_seconds", xlabel="training seconds")


def samples_figure(
    training: pd.DataFrame,
    data: str,
    palette: dict[str, Any],
    path: Path,
    heldout: np.ndarray | None = None,
) -> Path | None:
    """Draw the final snapshot of each estimator on data set ``data``, for the smallest seed.

    Two-dimensional samples are drawn as a scatter, over the held-out data in
    grey when ``heldout`` is given. Images (C, H, W) are drawn as a grid of up
    to 64 images. Samples of other shapes are drawn by their first two coordinates.
    """
    if "snapshot" not in training:
        return None
    cells = training[(training["data"] == data) & training["snapshot"].map(lambda s: isinstance(s, list))]
    if cells.empty:
        return None
    seed = cells["seed"].min()
    cells = cells[cells["seed"] == seed].sort_values("series").drop_duplicates("series")
    snapshots = [np.asarray(snapshot, dtype=float) for snapshot in cells["snapshot"]]
    reference = None if heldout is None else _plane(np.asarray(heldout, dtype=float))
    limits = _limits([_plane(s) for s in snapshots if s.ndim != 4] + ([reference] if reference is not None else []))
    fig, axes = _panels(len(cells), legend=False)
    for ax, series, snapshot in zip(axes, cells["series"], snapshots):
        if snapshot.ndim == 4:
            _image_grid(ax, snapshot)
        else:
            if reference is not None:
                ax.scatter(reference[:, 0], reference[:, 1], s=4, color="0.75")
            points = _plane(snapshot)
            ax.scatter(points[:, 0], points[:, 1], s=6, color=palette[series])
            ax.set(xlim=limits[0], ylim=limits[1])
        ax.set_title(f"{series} (seed {int(seed)})")
    background = ", held-out data in grey" if reference is not None and snapshots[0].ndim != 4 else ""
    fig.suptitle(f"{data}: generator samples at the last step{background}")
    return _save(fig, path)


def safe_name(name: str) -> str:
    """Return ``name`` with characters other than letters, digits, '-' and '_' replaced by '_'."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", name)


def _quality(evaluations: pd.DataFrame, palette: dict[str, Any], path: Path, *, x: str, xlabel: str) -> Path | None:
    metrics = [m for m in QUALITY_METRICS if m in evaluations and evaluations[m].notna().any()]
    if evaluations.empty or not metrics:
        return None
    datasets = sorted(evaluations["data"].dropna().unique())
    fig, grid = _grid(len(metrics), len(datasets))
    for row, metric in enumerate(metrics):
        label, scale = QUALITY_METRICS[metric]
        for column, data in enumerate(datasets):
            ax = grid[row][column]
            frame = evaluations[(evaluations["data"] == data) & evaluations[metric].notna()]
            if frame.empty:
                ax.set_axis_off()
                continue
            if x == "step":
                _line_with_seeds(ax, frame, x, metric, palette)
            else:
                sns.lineplot(
                    data=frame, x=x, y=metric, hue="series", units="cell_id", estimator=None,
                    palette=palette, alpha=0.8, legend=False, ax=ax,
                )
            if scale == "log" and bool((frame[metric] > 0).all()):
                ax.set_yscale("log")
                format_log_axis(ax, "y")
            ax.set(title=_wrap(data) if row == 0 else "", xlabel=xlabel, ylabel=label)
    return _save(fig, path, palette, evaluations["series"].unique())


def _line_with_seeds(ax: Axes, data: pd.DataFrame, x: str, y: str, palette: dict[str, Any]) -> None:
    """Draw the mean line with a one-sd band over seeds, and each seed as a faint point."""
    sns.lineplot(
        data=data, x=x, y=y, hue="series", palette=palette, errorbar="sd",
        marker="o", legend=False, ax=ax,
    )
    sns.scatterplot(data=data, x=x, y=y, hue="series", palette=palette, alpha=0.35, s=14, legend=False, ax=ax)


def _panels(count: int, *, legend: bool = True) -> tuple[Figure, list[Axes]]:
    """Create a figure of ``count`` panels, up to ``MAX_COLUMNS`` per row, the spare cells hidden."""
    columns = min(count, MAX_COLUMNS)
    fig, grid = _grid(math.ceil(count / columns), columns, legend=legend)
    axes = list(grid.flat)
    for ax in axes[count:]:
        ax.set_axis_off()
    return fig, axes[:count]


def _grid(rows: int, columns: int, *, legend: bool = True) -> tuple[Figure, np.ndarray]:
    """Create a rows x columns grid of axes, with room on the right for a legend.

    The figure is at least ``MIN_WIDTH`` inches wide, so that a single panel
    stays wide enough for its wrapped title to end before the legend.
    """
    width = max(PANEL_SIZE[0] * columns + (LEGEND_WIDTH if legend else 0.0), MIN_WIDTH)
    fig, grid = plt.subplots(
        rows, columns, figsize=(width, PANEL_SIZE[1] * rows), squeeze=False, layout="constrained", dpi=DPI
    )
    return fig, grid


def _save(fig: Figure, path: Path, palette: dict[str, Any] | None = None, estimators: Iterable[str] = ()) -> Path:
    """Add a legend of ``estimators`` (when a palette is given), write the PNG and close the figure."""
    if palette:
        _add_legend(fig, palette, estimators)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    logger.debug("wrote %s", path)
    return path


def _add_legend(fig: Figure, palette: dict[str, Any], estimators: Iterable[str]) -> Legend:
    """Add a figure legend, right of the panels, of the series in ``estimators``, in palette order."""
    present = set(estimators)
    handles = [
        Line2D([0], [0], color=colour, marker="o", label=name)
        for name, colour in palette.items()
        if name in present
    ]
    return fig.legend(handles=handles, title="estimator", loc="outside right upper")


def _image_grid(ax: Axes, images: np.ndarray, limit: int = 64) -> None:
    """Tile up to ``limit`` images (k, C, H, W) with values in [-1, 1] into one grey mosaic."""
    images = images[:limit]
    k, _, height, width = images.shape
    columns = math.ceil(math.sqrt(k))
    rows = math.ceil(k / columns)
    mosaic = np.full((rows * (height + 1) + 1, columns * (width + 1) + 1), -1.0)
    for index, image in enumerate(images):
        row, column = divmod(index, columns)
        top, left = 1 + row * (height + 1), 1 + column * (width + 1)
        mosaic[top:top + height, left:left + width] = image.mean(axis=0)
    ax.imshow(mosaic, cmap="gray", vmin=-1.0, vmax=1.0, interpolation="nearest")
    ax.set_axis_off()


def _plane(samples: np.ndarray) -> np.ndarray:
    """Return the first two coordinates of (k, ...) samples, repeating a lone coordinate."""
    flat = samples.reshape(len(samples), -1)
    return flat[:, :2] if flat.shape[1] > 1 else np.repeat(flat, 2, axis=1)


def _limits(clouds: list[np.ndarray]) -> tuple[tuple[float, float], tuple[float, float]]:
    """Return padded x and y limits that contain every point of ``clouds``."""
    if not clouds:
        return (-1.0, 1.0), (-1.0, 1.0)
    points = np.concatenate(clouds)
    low, high = points.min(axis=0), points.max(axis=0)
    pad = 0.05 * np.maximum(high - low, 1e-6)
    return (low[0] - pad[0], high[0] + pad[0]), (low[1] - pad[1], high[1] + pad[1])


def _wrap(title: str, width: int = 26) -> str:
    """Break a long panel title into lines, so that it stays within a narrow panel."""
    return textwrap.fill(str(title), width)


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _natural_key(label: str) -> tuple[int, str]:
    digits = re.findall(r"\d+", label)
    return (int(digits[0]) if digits else -1, label)
