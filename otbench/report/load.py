"""Read a run folder's records into pandas DataFrames, one tidy frame per task.

The record schema is described in ``docs/records.md``: one JSON object per
line of ``records.jsonl``, with a task-specific ``result`` object.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "RECORDS_FILE",
    "accuracy_frame",
    "add_series",
    "budget_label",
    "cost_frame",
    "evaluations_frame",
    "load_json",
    "load_records",
    "read_records",
    "training_frame",
]

logger = logging.getLogger(__name__)

RECORDS_FILE = "records.jsonl"

# Record fields that hold objects; load_records flattens each one level deep
# into columns named "<field>.<key>".
_NESTED_FIELDS = ("result", "estimator_params", "problem_params")


def read_records(path: Path) -> list[dict[str, Any]]:
    """Parse a ``records.jsonl`` file into a list of records.

    A last line that is not valid JSON is skipped with a warning, because a
    run that was killed while writing leaves a truncated line there. Blank
    lines are ignored.

    Raises:
        ValueError: the file is missing or contains no record, or a line other
            than the last is not a JSON object.
    """
    if not path.is_file():
        raise ValueError(f"records file {path} is missing; expected the output of 'otbench run'")
    lines = [(number, line) for number, line in enumerate(path.read_text().splitlines(), 1) if line.strip()]
    records: list[dict[str, Any]] = []
    for index, (number, line) in enumerate(lines):
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            if index == len(lines) - 1:
                logger.warning("skipped the truncated last line %d of %s: %s", number, path, error)
                continue
            raise ValueError(f"line {number} of {path} is not valid JSON: {error}") from None
        if not isinstance(record, dict):
            raise ValueError(f"line {number} of {path} is a {type(record).__name__}; expected a JSON object")
        records.append(record)
    if not records:
        raise ValueError(f"records file {path} contains no record")
    return records


def load_records(run_dir: str | Path) -> pd.DataFrame:
    """Load the records of a run folder as one row per finished cell.

    The columns are the record's keys, with ``result``, ``estimator_params``
    and ``problem_params`` flattened one level deep into columns named, for
    example, ``result.estimate`` and ``problem_params.d``. Keys of results
    that differ by task (``result.inner_seconds`` is a number for accuracy
    cells and a list for cost cells) share a column. Use ``accuracy_frame``,
    ``cost_frame`` and ``training_frame`` for tidy frames of one task.

    Args:
        run_dir: the run folder, which contains ``records.jsonl``.

    Raises:
        ValueError: ``records.jsonl`` is missing, empty or malformed.
    """
    records = read_records(Path(run_dir) / RECORDS_FILE)
    rows = [_flatten(record) for record in records]
    frame = pd.DataFrame(rows)
    for column in ("task", "estimator", "status"):
        if column not in frame:
            raise ValueError(
                f"records in {Path(run_dir) / RECORDS_FILE} have no {column!r} key; "
                f"expected records written by 'otbench run'"
            )
    return frame


def load_json(path: Path) -> dict[str, Any]:
    """Return the JSON object in ``path``, or an empty dict if the file is missing or unreadable."""
    if not path.is_file():
        return {}
    try:
        value = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        logger.warning("ignored %s, which is not valid JSON: %s", path, error)
        return {}
    return value if isinstance(value, dict) else {}


def accuracy_frame(records: pd.DataFrame) -> pd.DataFrame:
    """Return one row per measured accuracy cell (the result is present).

    Columns: the record's identity (``estimator``, ``problem``, ``problem_label``,
    ``n``, ``d``, ``p``, ``seed``, ``status``) and the result's keys without the
    ``result.`` prefix (``estimate``, ``truth``, ``relative_error``, ``ratio``,
    ``scale_known``, ``inner_seconds``, ``iterations``, ``converged``, ``cosine``, ...).
    ``iterations`` is NaN and ``converged`` is None where the record has null.
    ``budget_label`` names the cell's point on its estimator's sweep, and
    ``problem_label`` includes the order p, because W_1 and W_2 of one pair
    are different problems.
    """
    frame = _task_rows(records, "accuracy")
    if frame.empty:
        return frame
    all_params = _params(frame, "problem_params")
    label_keys = _varying_keys(frame["problem"], all_params)
    frame["problem_label"] = [
        _problem_label(problem, {key: value for key, value in params.items() if key in label_keys.get(problem, ())})
        for problem, params in zip(frame["problem"], all_params)
    ]
    if "scale_known" in frame:
        frame["scale_known"] = frame["scale_known"].map(lambda value: value is not False)
    else:
        frame["scale_known"] = True
    # converged is null where the estimator has no stopping criterion (critics).
    # It stays None, because reading it as False would count critics as failures.
    converged = frame["converged"] if "converged" in frame else pd.Series([None] * len(frame), index=frame.index)
    frame["converged"] = pd.Series([_flag(value) for value in converged], index=frame.index, dtype=object)
    frame["budget_label"] = [budget_label(value) for value in _params(frame, "budget")]
    frame["p"] = [_plain_int(value) for value in frame["p"]]
    frame["problem_label"] = [
        f"{label}, p={p}" for label, p in zip(frame["problem_label"], frame["p"])
    ]
    return _numeric(frame, ACCURACY_NUMBERS)


# Numeric result keys of an accuracy record; absent keys (older runs) become NaN columns.
ACCURACY_NUMBERS = (
    "estimate", "truth", "truth_stderr", "bias", "relative_error", "ratio", "inner_seconds",
    "iterations", "samples_used", "cosine", "gradient_error",
)


def budget_label(budget: dict[str, Any]) -> str:
    """Return a label such as ``blur=0.05, scaling=0.9`` for a cell's budget, or ``default``."""
    if not budget:
        return "default"
    return ", ".join(f"{key}={_plain_int(value)}" for key, value in sorted(budget.items()))


def cost_frame(records: pd.DataFrame) -> pd.DataFrame:
    """Return one row per measured cost cell, with the result's medians and peak memory."""
    frame = _task_rows(records, "cost")
    if frame.empty:
        return frame
    return _numeric(frame, ("inner_seconds_median", "call_seconds_median", "peak_memory_bytes"))


def training_frame(records: pd.DataFrame) -> pd.DataFrame:
    """Return one row per measured training cell, with totals and final metrics.

    Adds ``total_inner_seconds`` (sum over steps), ``training_seconds``
    (elapsed seconds at the last step, evaluation excluded) and one column
    ``final.<metric>`` per final metric.
    """
    frame = _task_rows(records, "training")
    if frame.empty:
        return frame
    totals_inner, totals_training = [], []
    for steps in frame.get("steps", pd.Series([None] * len(frame), index=frame.index)):
        steps = steps if isinstance(steps, list) else []
        totals_inner.append(sum(float(row.get("inner_seconds", 0.0)) for row in steps))
        totals_training.append(float(steps[-1].get("elapsed_seconds", math.nan)) if steps else math.nan)
    frame["total_inner_seconds"] = totals_inner
    frame["training_seconds"] = totals_training
    finals = [value if isinstance(value, dict) else {} for value in frame.get("final", [None] * len(frame))]
    for metric in sorted({key for final in finals for key in final}):
        frame[f"final.{metric}"] = [_number(final.get(metric)) for final in finals]
    return frame


def evaluations_frame(training: pd.DataFrame) -> pd.DataFrame:
    """Return the evaluation rows of all training cells, one row per (cell, evaluation).

    Columns: ``estimator``, ``series``, ``p``, ``data``, ``seed``, ``cell_id``, ``step``,
    ``elapsed_seconds`` and one column per metric.
    """
    rows = []
    for _, cell in training.iterrows():
        evaluations = cell.get("evaluations")
        if not isinstance(evaluations, list):
            continue
        for evaluation in evaluations:
            row = {key: cell.get(key) for key in ("estimator", "series", "p", "data", "seed", "cell_id")}
            row.update({key: _number(value) for key, value in evaluation.items()})
            rows.append(row)
    return pd.DataFrame(rows)


def _flatten(record: dict[str, Any]) -> dict[str, Any]:
    row = {key: value for key, value in record.items() if key not in _NESTED_FIELDS}
    for field in _NESTED_FIELDS:
        value = record.get(field)
        row[field] = value
        if isinstance(value, dict):
            for key, item in value.items():
                row[f"{field}.{key}"] = item
    return row


def _task_rows(records: pd.DataFrame, task: str) -> pd.DataFrame:
    """Return the rows of ``task`` that carry a result, with ``result.`` removed from column names."""
    rows = records[(records["task"] == task) & records["result"].map(lambda value: isinstance(value, dict))]
    if rows.empty:
        return rows.reset_index(drop=True)
    rows = rows.dropna(axis="columns", how="all").copy()
    rows.columns = [column.removeprefix("result.") for column in rows.columns]
    for column in ("problem", "data", "n", "d", "p", "seed"):
        if column not in rows:
            rows[column] = None
    return add_series(rows.reset_index(drop=True))


def add_series(frame: pd.DataFrame) -> pd.DataFrame:
    """Add the column ``series``: the estimator label, with ``(p=...)`` where the label has several p.

    A suite block may run one estimator configuration for p = 1 and p = 2,
    and these are different quantities, so figures draw them as separate lines.
    """
    orders = frame.groupby("estimator", dropna=False)["p"].nunique(dropna=False)
    frame["series"] = [
        f"{estimator} (p={_plain_int(p)})" if orders.get(estimator, 1) > 1 else str(estimator)
        for estimator, p in zip(frame["estimator"], frame["p"])
    ]
    return frame


def _numeric(frame: pd.DataFrame, columns: tuple[str, ...]) -> pd.DataFrame:
    """Convert ``columns`` to floats (null to NaN), adding any that are missing as NaN."""
    for column in columns:
        if column in frame:
            frame[column] = pd.to_numeric(frame[column], errors="coerce").astype(float)
        else:
            frame[column] = math.nan
    return frame


def _params(frame: pd.DataFrame, field: str) -> list[dict[str, Any]]:
    if field not in frame:
        return [{}] * len(frame)
    return [value if isinstance(value, dict) else {} for value in frame[field]]


def _varying_keys(problems: pd.Series, params: list[dict[str, Any]]) -> dict[Any, set[str]]:
    """Return, per problem name, the parameter keys worth naming in a label.

    A key is named when its value differs between the problem's records, and
    ``d`` always. A value shared by every record, such as a default seed,
    would only lengthen every label.
    """
    values: dict[Any, dict[str, set[str]]] = {}
    for problem, problem_params in zip(problems, params):
        keys = values.setdefault(problem, {})
        for key, value in problem_params.items():
            keys.setdefault(key, set()).add(json.dumps(value, sort_keys=True, default=str))
    return {
        problem: {key for key, seen in keys.items() if key == "d" or len(seen) > 1}
        for problem, keys in values.items()
    }


def _problem_label(problem: Any, params: dict[str, Any]) -> str:
    """Return a label such as ``gaussians (d=16)`` for a problem and its parameters."""
    if not params:
        return str(problem)
    inner = ", ".join(f"{key}={value}" for key, value in sorted(params.items()))
    return f"{problem} ({inner})"


def _plain_int(value: Any) -> Any:
    number = _number(value)
    return int(number) if math.isfinite(number) and number == int(number) else value


def _flag(value: Any) -> bool | None:
    """Return a record's boolean flag as a Python bool, or None where it is null or not a boolean."""
    return bool(value) if isinstance(value, (bool, np.bool_)) else None


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan
