"""Records: JSON safety, appending and reading back after a crash."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from otbench.bench import RECORD_KEYS, RecordWriter, make_record, read_records
from otbench.bench.records import json_safe

CELL = {"cell_id": "00000000000000aa", "task": "cost", "estimator": "exact", "p": 1, "seed": 0}


def test_json_safe_converts_types():
    value, replaced = json_safe({"a": (1, 2), "b": np.float64(0.5), "c": torch.tensor([1.0, 2.0])})
    assert value == {"a": [1, 2], "b": 0.5, "c": [1.0, 2.0]}
    assert replaced == []


def test_json_safe_replaces_non_finite():
    value, replaced = json_safe({"x": [1.0, math.nan], "y": math.inf}, "result")
    assert value == {"x": [1.0, None], "y": None}
    assert replaced == ["result.x[1]", "result.y"]


def test_make_record_nan_becomes_null():
    record = make_record(CELL, status="ok", message=None, wall_seconds=0.1, result={"estimate": math.nan})
    assert record["result"]["estimate"] is None
    assert "result.estimate" in record["message"]


def test_make_record_keys():
    record = make_record(CELL, status="timeout", message="slow", wall_seconds=1.0, result=None)
    assert set(RECORD_KEYS) <= set(record)
    assert record["problem"] is None
    assert record["finished_at"].endswith("+00:00")


def test_writer_then_read(tmp_path):
    path = tmp_path / "records.jsonl"
    with RecordWriter(path) as writer:
        for seed in range(3):
            writer.write({**CELL, "seed": seed})
    assert [r["seed"] for r in read_records(path)] == [0, 1, 2]


def test_read_missing_file(tmp_path):
    assert read_records(tmp_path / "absent.jsonl") == []


def test_read_repairs_partial_line(tmp_path):
    path = tmp_path / "records.jsonl"
    with RecordWriter(path) as writer:
        writer.write(CELL)
    with open(path, "a") as handle:
        handle.write('{"cell_id": "cut sh')
    assert len(read_records(path, repair=True)) == 1
    assert path.read_text().endswith("}\n")


def test_read_without_repair_keeps_file(tmp_path):
    path = tmp_path / "records.jsonl"
    path.write_text('{"cell_id": "a"}\n{"cell')
    assert len(read_records(path)) == 1
    assert path.read_text().endswith('{"cell')


def test_read_rejects_bad_line(tmp_path):
    path = tmp_path / "records.jsonl"
    path.write_text('{"cell_id": "a"}\nnot json\n{"cell_id": "b"}\n')
    with pytest.raises(ValueError, match="line 2"):
        read_records(path)
