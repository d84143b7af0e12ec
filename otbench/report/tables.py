"""Summary tables of a run: accuracy, cost, training, statuses, skipped cells, environment.

Each function returns a DataFrame of formatted strings, ready for
``DataFrame.to_markdown`` and ``DataFrame.to_html``. Numbers over seeds are
written as ``mean ± sd`` (sample standard deviation); a group with one seed
shows the mean alone.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from typing import Any

import pandas as pd

__all__ = [
    "CONTEXT_METRICS",
    "NOT_APPLICABLE",
    "SCALE_UNKNOWN_NOTE",
    "STATUSES",
    "accuracy_table",
    "cost_table",
    "environment_table",
    "failures_table",
    "format_converged",
    "format_mean_sd",
    "largest_budget",
    "natural_key",
    "skipped_table",
    "status_table",
    "summary_table",
    "training_table",
]

STATUSES = ("ok", "not_converged", "timeout", "out_of_memory", "error")

SCALE_UNKNOWN_NOTE = (
    "† ratio estimate / truth in place of the relative error: a weight-clipped critic "
    "estimates W_1 only up to an unknown factor, so compare how stable the ratio is "
    "across n and seeds, not its distance from 1."
)

# Maximum length of a message in the failures table, in characters.
MESSAGE_LENGTH = 120

# Shown where every value of a group is null: the quantity does not apply,
# for example the converged flag of a critic, which has no stopping criterion.
NOT_APPLICABLE = "n/a"

# Final metrics that describe the evaluation, not the generator's samples, so
# they are the same for every estimator and are left out of the training table.
# classifier_accuracy is the held-out accuracy of the fixed digits classifier
# whose features frechet_distance uses.
CONTEXT_METRICS = ("classifier_accuracy",)


def format_mean_sd(values: Iterable[Any], digits: int = 4) -> str:
    """Format numbers as ``mean ± sd`` over the finite values, or ``mean`` alone for one value.

    Returns an empty string when no value is finite.
    """
    series = pd.to_numeric(pd.Series(list(values), dtype=object), errors="coerce").astype(float)
    series = series[series.map(math.isfinite)]
    if series.empty:
        return ""
    mean = float(series.mean())
    if len(series) == 1:
        return f"{mean:.{digits}g}"
    return f"{mean:.{digits}g} ± {float(series.std(ddof=1)):.2g}"


def accuracy_table(accuracy: pd.DataFrame) -> tuple[pd.DataFrame, bool]:
    """Summarise accuracy cells per problem (with p), estimator, budget and n.

    ``bias`` is the signed mean estimate - truth, the sampling bias of a
    plug-in estimator on n samples. ``cosine`` and ``gradient error`` compare
    -d estimate / dx with the true gradient where the problem knows its
    transport map. The ``converged`` column counts the cells whose last solve
    converged; it is ``n/a`` where every record of the group has null
    (critics have no stopping criterion).

    Args:
        accuracy: the frame of ``load.accuracy_frame``.

    Returns:
        The table, and whether any row shows a ratio in place of the relative
        error (so the caller adds ``SCALE_UNKNOWN_NOTE``).
    """
    rows = []
    any_ratio = False
    keys = ["problem_label", "series", "budget_label", "n"]
    groups = sorted(
        accuracy.groupby(keys, sort=False, dropna=False),
        key=lambda item: (natural_key(item[0][0]), item[0][1], natural_key(item[0][2]), item[0][3]),
    )
    for (problem, series, budget, n), group in groups:
        if group["scale_known"].all():
            error = format_mean_sd(group["relative_error"])
        else:
            ratio = group["ratio"].fillna(group["estimate"] / group["truth"])
            error = f"ratio {format_mean_sd(ratio)} †"
            any_ratio = True
        truth = format_mean_sd(group["truth"])
        stderr = float(group["truth_stderr"].max()) if group["truth_stderr"].notna().any() else 0.0
        if truth and stderr > 0:
            truth = f"{truth} (se {stderr:.1g})"
        rows.append(
            {
                "problem": problem,
                "estimator": series,
                "budget": budget,
                "n": _int_or_blank(n),
                "seeds": len(group),
                "estimate": format_mean_sd(group["estimate"]),
                "truth": truth,
                "bias": format_mean_sd(group["bias"], digits=3) or NOT_APPLICABLE,
                "relative error": error,
                "cosine": format_mean_sd(group["cosine"], digits=3) or NOT_APPLICABLE,
                "gradient error": format_mean_sd(group["gradient_error"], digits=3) or NOT_APPLICABLE,
                "inner seconds": format_mean_sd(group["inner_seconds"], digits=3),
                "samples used": _int_or_blank(group["samples_used"].mean()),
                "converged": format_converged(group["converged"]),
            }
        )
    return pd.DataFrame(rows), any_ratio


_NUMBER = re.compile(r"(\d+(?:\.\d*)?(?:e[-+]?\d+)?)")


def natural_key(text: Any) -> tuple[Any, ...]:
    """Return a sort key that orders the numbers inside a label by value: ``steps=50`` before ``steps=200``."""
    parts = _NUMBER.split(str(text))
    return tuple((0, float(part)) if i % 2 else (1, part) for i, part in enumerate(parts))


def largest_budget(accuracy: pd.DataFrame) -> pd.DataFrame:
    """Keep, per series and problem, the cells of the configuration that spent the most.

    The configuration is the budget and n with the largest mean inner-loop
    seconds over seeds; its cells (one per seed) are returned.
    """
    keys = ["series", "problem_label", "budget_label", "n"]
    means = accuracy.groupby(keys, dropna=False)["inner_seconds"].mean().reset_index()
    best = means.loc[means.groupby(["series", "problem_label"], dropna=False)["inner_seconds"].idxmax()]
    return accuracy.merge(best[keys], on=keys, how="inner")


def summary_table(accuracy: pd.DataFrame) -> pd.DataFrame:
    """Per estimator: median relative error and mean cosine over the problems, at its largest budget.

    For each problem, the estimator's configuration that spent the most
    inner-loop seconds is averaged over seeds; the medians and means are then
    taken over problems. ``best relative error`` is the median over problems
    of the lowest mean error over all configurations, whatever they cost.
    """
    rows = []
    chosen = largest_budget(accuracy)
    keys = ["series", "problem_label", "budget_label", "n"]
    every = accuracy.groupby(keys, dropna=False)[["relative_error", "cosine"]].mean().reset_index()
    for series, group in chosen.groupby("series", sort=True):
        per_problem = group.groupby("problem_label")[
            ["relative_error", "cosine", "gradient_error", "inner_seconds", "ratio"]
        ].mean()
        best = every[every["series"] == series].groupby("problem_label")["relative_error"].min()
        scale_known = bool(group["scale_known"].all())
        rows.append(
            {
                "estimator": series,
                "problems": len(per_problem),
                "median relative error": _median(per_problem["relative_error"]) if scale_known else NOT_APPLICABLE,
                "median ratio": _median(per_problem["ratio"]),
                "best relative error": _median(best) if scale_known else NOT_APPLICABLE,
                "mean cosine": _mean(per_problem["cosine"]),
                "median gradient error": _median(per_problem["gradient_error"]) if scale_known else NOT_APPLICABLE,
                "median inner seconds": _median(per_problem["inner_seconds"]),
            }
        )
    return pd.DataFrame(rows)


def _median(values: pd.Series) -> str:
    values = values.dropna()
    return f"{float(values.median()):.3g}" if not values.empty else NOT_APPLICABLE


def _mean(values: pd.Series) -> str:
    values = values.dropna()
    return f"{float(values.mean()):.3g}" if not values.empty else NOT_APPLICABLE


def format_converged(flags: Iterable[Any]) -> str:
    """Count the converged flags as ``"k of m"`` over the non-null flags, or ``"n/a"`` when all are null."""
    known = [bool(flag) for flag in flags if flag is not None and not (isinstance(flag, float) and math.isnan(flag))]
    if not known:
        return NOT_APPLICABLE
    return f"{sum(known)} of {len(known)}"


def cost_table(cost: pd.DataFrame) -> pd.DataFrame:
    """Summarise cost cells per estimator, p, n and d: per-call median seconds and peak memory."""
    rows = []
    has_memory = bool(cost["peak_memory_bytes"].notna().any())
    keys = cost[["estimator", "p", "n", "d"]].astype(object).fillna(-1)
    groups = cost.groupby([keys["estimator"], keys["p"], keys["n"], keys["d"]], sort=True)
    for (estimator, p, n, d), group in groups:
        row = {
            "estimator": estimator,
            "n": "" if n == -1 else int(n),
            "d": "" if d == -1 else int(d),
            "p": "" if p == -1 else int(p),
            "seeds": len(group),
            "inner seconds (median per call)": format_mean_sd(group["inner_seconds_median"], digits=3),
            "call seconds (median per call)": format_mean_sd(group["call_seconds_median"], digits=3),
        }
        if has_memory:
            row["peak memory added (MiB)"] = format_mean_sd(group["peak_memory_bytes"] / 2**20, digits=3)
        rows.append(row)
    return pd.DataFrame(rows)


def training_table(training: pd.DataFrame) -> pd.DataFrame:
    """Summarise training cells per estimator, data set and p: final metrics and total seconds.

    Metrics in ``CONTEXT_METRICS`` are left out, because the report states them once.
    """
    context = {f"final.{metric}" for metric in CONTEXT_METRICS}
    metrics = sorted(column for column in training.columns if column.startswith("final.") and column not in context)
    rows = []
    for (estimator, data, p), group in training.groupby(["estimator", "data", "p"], sort=True, dropna=False):
        row: dict[str, Any] = {
            "estimator": estimator,
            "data": data,
            "p": _int_or_blank(p),
            "batch size": _first_int(group["n"]),
            "seeds": len(group),
        }
        for metric in metrics:
            row[metric.removeprefix("final.")] = format_mean_sd(group[metric])
        row["total inner seconds"] = format_mean_sd(group["total_inner_seconds"], digits=3)
        row["training seconds"] = format_mean_sd(group["training_seconds"], digits=3)
        rows.append(row)
    return pd.DataFrame(rows)


def status_table(records: pd.DataFrame) -> pd.DataFrame:
    """Count records per task, estimator and status; every status gets a column."""
    counts = pd.crosstab([records["task"], records["estimator"]], records["status"])
    columns = list(STATUSES) + sorted(set(counts.columns) - set(STATUSES))
    counts = counts.reindex(columns=columns, fill_value=0)
    counts["total"] = counts.sum(axis=1)
    counts = counts.reset_index()
    counts.columns.name = None
    return counts


def failures_table(records: pd.DataFrame) -> pd.DataFrame:
    """List each record whose status is not ``ok``, with its message shortened."""
    failed = records[records["status"] != "ok"]
    rows = []
    for _, record in failed.sort_values(["task", "estimator", "seed"]).iterrows():
        case = record.get("problem")
        if not isinstance(case, str):
            case = record.get("data")
        rows.append(
            {
                "task": record["task"],
                "estimator": record["estimator"],
                "case": case if isinstance(case, str) else "",
                "p": _int_or_blank(record.get("p")),
                "n": _int_or_blank(record.get("n")),
                "seed": _int_or_blank(record.get("seed")),
                "status": record["status"],
                "message": shorten(record.get("message")),
            }
        )
    return pd.DataFrame(rows)


def skipped_table(skipped: list[Any]) -> pd.DataFrame:
    """Tabulate the skipped combinations of ``resolved.json``, the reason first."""
    rows = []
    for entry in skipped:
        entry = entry if isinstance(entry, dict) else {"reason": entry}
        row: dict[str, Any] = {"reason": shorten(entry.get("reason"))}
        for key, value in entry.items():
            if key != "reason":
                row[key] = value if isinstance(value, (str, int, float)) else json.dumps(value, sort_keys=True)
        rows.append(row)
    return pd.DataFrame(rows).fillna("")


def environment_table(environment: dict[str, Any]) -> pd.DataFrame:
    """Tabulate ``environment.json`` as key-value rows, nested objects flattened one level.

    The ``command`` key is left out, because the report shows it on its own line.
    """
    rows = []
    for key, value in environment.items():
        if key == "command":
            continue
        if isinstance(value, dict):
            rows += [{"key": f"{key}.{inner}", "value": _plain(item)} for inner, item in value.items()]
        else:
            rows.append({"key": key, "value": _plain(value)})
    return pd.DataFrame(rows, columns=["key", "value"])


def shorten(message: Any, length: int = MESSAGE_LENGTH) -> str:
    """Return the first line of ``message``, cut to ``length`` characters with an ellipsis."""
    if not isinstance(message, str):
        return ""
    lines = message.strip().splitlines()
    first = lines[0] if lines else ""
    if len(first) > length or len(lines) > 1:
        return first[: length - 1].rstrip() + "…"
    return first


def _plain(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ", ".join(str(item) for item in value)
    return "" if value is None else str(value)


def _first_int(values: pd.Series) -> int | str:
    values = values.dropna()
    return int(values.iloc[0]) if not values.empty else ""


def _int_or_blank(value: Any) -> int | str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    return int(value)
