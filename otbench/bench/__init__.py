"""The benchmark harness: suite files, cells, tasks, the runner and records.

>>> from otbench.bench import load_suite, resolve_suite
>>> suite = load_suite("benchmarks/tiny.toml")          # doctest: +SKIP
>>> len(resolve_suite(suite).cells)                     # doctest: +SKIP
18
"""

from __future__ import annotations

from .cells import Resolution, cell_id, resolve_suite
from .records import RECORD_KEYS, STATUSES, RecordWriter, make_record, read_records
from .runner import RunFolderError, RunSummary, run_suite
from .suite import EstimatorConfig, Suite, SuiteError, load_suite, parse_suite
from .tasks import run_cell

__all__ = [
    "RECORD_KEYS",
    "STATUSES",
    "EstimatorConfig",
    "RecordWriter",
    "Resolution",
    "RunFolderError",
    "RunSummary",
    "Suite",
    "SuiteError",
    "cell_id",
    "load_suite",
    "make_record",
    "parse_suite",
    "read_records",
    "resolve_suite",
    "run_cell",
    "run_suite",
]
