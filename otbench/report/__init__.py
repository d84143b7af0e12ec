"""Reports of a benchmark run: records -> tables and seaborn figures -> report.md and report.html.

>>> from otbench.report import write_report
>>> write_report("runs/quick")   # doctest: +SKIP
PosixPath('runs/quick/report.md')
"""

from __future__ import annotations

from .build import write_report
from .load import load_records

__all__ = ["load_records", "write_report"]
