"""Benchmark records: building them, appending them safely and reading them back.

The record schema is documented in ``docs/records.md``. Records are appended
to ``records.jsonl`` one line each, flushed and synced to disk before the
next cell is handed out, so a crash or ``kill -9`` loses at most the line
being written. :func:`read_records` drops such a partial last line.
"""

from __future__ import annotations

import json
import logging
import math
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

__all__ = [
    "RECORD_KEYS",
    "STATUSES",
    "RecordWriter",
    "json_safe",
    "make_record",
    "read_records",
]

logger = logging.getLogger(__name__)

STATUSES = ("ok", "not_converged", "timeout", "out_of_memory", "error")

RECORD_KEYS = (
    "cell_id",
    "task",
    "estimator",
    "estimator_name",
    "estimator_params",
    "problem",
    "problem_params",
    "data",
    "n",
    "d",
    "p",
    "seed",
    "status",
    "message",
    "wall_seconds",
    "finished_at",
    "result",
)

# Cell keys copied into every record besides the documented ones.
_EXTRA_KEYS = ("settings", "budget")


def json_safe(value: Any, path: str = "") -> tuple[Any, list[str]]:
    """Convert ``value`` to plain JSON types, replacing non-finite floats by None.

    Tensors and numpy arrays become (nested) lists or numbers, tuples become
    lists and other objects their ``str``.

    Returns:
        The converted value and the key paths (such as ``result.estimate``) where
        a NaN or infinity was replaced.
    """
    replaced: list[str] = []
    converted = _convert(value, path, replaced)
    return converted, replaced


def _convert(value: Any, path: str, replaced: list[str]) -> Any:
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if math.isfinite(value):
            return float(value)
        replaced.append(path or "value")
        return None
    if isinstance(value, dict):
        return {str(key): _convert(item, _join(path, str(key)), replaced) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_convert(item, f"{path}[{i}]", replaced) for i, item in enumerate(value)]
    tolist = getattr(value, "tolist", None)
    if callable(tolist):
        # torch tensors, numpy arrays and numpy scalars
        if hasattr(value, "detach"):
            value = value.detach().cpu()
        return _convert(value.tolist(), path, replaced)
    return str(value)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def make_record(
    cell: dict[str, Any],
    *,
    status: str,
    message: str | None,
    wall_seconds: float,
    result: dict[str, Any] | None,
) -> dict[str, Any]:
    """Build the record of one finished cell.

    Non-finite numbers in ``result`` become null and the message lists where.

    Args:
        cell: the cell, as produced by :func:`otbench.bench.cells.resolve_suite`.
        status: one of :data:`STATUSES`.
        message: the error or warning text, or None.
        wall_seconds: seconds the whole cell took.
        result: the task's numbers, or None when nothing was measured.
    """
    assert status in STATUSES, status
    clean_result, replaced = json_safe(result, "result")
    if replaced:
        note = f"non-finite values replaced by null at {', '.join(replaced)}"
        message = note if not message else f"{message}; {note}"
    record: dict[str, Any] = {}
    for key in RECORD_KEYS:
        record[key] = json_safe(cell.get(key))[0]
    for key in _EXTRA_KEYS:
        if key in cell:
            record[key] = json_safe(cell[key])[0]
    wall = float(wall_seconds) if math.isfinite(wall_seconds) else None
    record.update(
        status=status,
        message=message,
        wall_seconds=wall,
        finished_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        result=clean_result,
    )
    return record


class RecordWriter:
    """Append records to a JSON Lines file, each line flushed and synced."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._file: IO[str] = open(self.path, "a", encoding="utf-8")

    def write(self, record: dict[str, Any]) -> None:
        """Append ``record`` as one line and sync it to disk."""
        line = json.dumps(record, allow_nan=False, separators=(",", ":"))
        self._file.write(line + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        """Close the file."""
        self._file.close()

    def __enter__(self) -> RecordWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def read_records(path: str | Path, *, repair: bool = False) -> list[dict[str, Any]]:
    """Read the records of ``records.jsonl``.

    A last line without its newline (a write cut short by a crash) is ignored,
    and with ``repair=True`` cut from the file, so that appending starts on a
    fresh line. A missing file has no records.

    Raises:
        ValueError: a complete line that is not a JSON object; the message
            gives its line number.
    """
    path = Path(path)
    if not path.exists():
        return []
    raw = path.read_bytes()
    complete_end = raw.rfind(b"\n") + 1
    if complete_end < len(raw):
        logger.warning(
            "%s ends with a partial line of %d bytes, written when a run stopped; ignoring it",
            path,
            len(raw) - complete_end,
        )
        if repair:
            with open(path, "r+b") as handle:
                handle.truncate(complete_end)
                handle.flush()
                os.fsync(handle.fileno())
    records = []
    for number, line in enumerate(raw[:complete_end].decode("utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise ValueError(
                f"{path} line {number} is not valid JSON ({error}); remove or fix that line"
            ) from None
        if not isinstance(record, dict) or "cell_id" not in record:
            raise ValueError(f"{path} line {number} is not a record with a cell_id; remove or fix that line")
        records.append(record)
    return records
