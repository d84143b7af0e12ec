"""The runner: run folder files, time limits, dead workers and existing records."""

from __future__ import annotations

import json
import os
import signal
import textwrap

import pytest

from otbench.bench import RunFolderError, parse_suite, read_records, run_suite

SMALL = """
name = "small"
seeds = [0]
[estimators.exact]
[[accuracy]]
problem = "translation"
params = { d = 2 }
n = [16, 24]
p = [1, 2]
"""

SLOW = """
name = "slow"
seeds = [0]
[estimators.exact]
[estimators.critic-gp]
n_critic = 1
[[accuracy]]
problem = "translation"
params = { d = 2 }
n = 64
estimators = ["critic-gp"]
critic_steps = 10_000_000
time_limit = 2
[[accuracy]]
problem = "translation"
params = { d = 2 }
n = 16
estimators = ["exact"]
"""


def suite_from(text: str):
    return parse_suite(textwrap.dedent(text), source="runner.toml")


@pytest.mark.slow
def test_run_writes_folder(tmp_path):
    events = []
    summary = run_suite(suite_from(SMALL), tmp_path, workers=2, callback=lambda e, i: events.append(e))
    records = read_records(tmp_path / "records.jsonl")
    resolved = json.loads((tmp_path / "resolved.json").read_text())
    environment = json.loads((tmp_path / "environment.json").read_text())
    assert summary.cells == 4
    assert summary.counts["ok"] == 4
    assert sorted(r["cell_id"] for r in records) == sorted(c["cell_id"] for c in resolved["cells"])
    assert resolved["skipped"] == []
    assert (tmp_path / "suite.toml").read_text() == textwrap.dedent(SMALL)
    assert environment["workers"] == 2
    assert environment["threads_per_worker"] == max(1, (os.cpu_count() or 1) // 2)
    assert environment["packages"]["torch"]
    assert events[0] == "start"
    assert events.count("cell_finished") == 4


@pytest.mark.slow
def test_timeout_then_run_continues(tmp_path):
    run_suite(suite_from(SLOW), tmp_path, workers=1)
    records = {r["estimator"]: r for r in read_records(tmp_path / "records.jsonl")}
    assert records["critic-gp"]["status"] == "timeout"
    assert "time limit of 2 s" in records["critic-gp"]["message"]
    assert records["critic-gp"]["result"] is None
    assert records["critic-gp"]["wall_seconds"] >= 2
    assert records["exact"]["status"] == "ok"


@pytest.mark.slow
def test_killed_worker_gives_error(tmp_path):
    killed = []

    def kill_first(event, info):
        if event == "cell_started" and not killed:
            killed.append(info["cell_id"])
            os.kill(info["pid"], signal.SIGKILL)

    summary = run_suite(suite_from(SMALL), tmp_path, workers=1, callback=kill_first)
    records = {r["cell_id"]: r for r in read_records(tmp_path / "records.jsonl")}
    assert len(records) == 4
    assert records[killed[0]]["status"] == "error"
    assert "exited with code -9" in records[killed[0]]["message"]
    assert summary.counts["ok"] == 3


def test_existing_records_need_resume(tmp_path):
    (tmp_path / "records.jsonl").write_text('{"cell_id": "a"}\n')
    with pytest.raises(RunFolderError, match="--resume"):
        run_suite(suite_from(SMALL), tmp_path, workers=1)


def test_invalid_workers(tmp_path):
    with pytest.raises(ValueError, match="workers=0"):
        run_suite(suite_from(SMALL), tmp_path, workers=0)


@pytest.mark.slow
def test_resume_runs_missing_only(tmp_path):
    run_suite(suite_from(SMALL), tmp_path, workers=1)
    lines = (tmp_path / "records.jsonl").read_text().splitlines()
    kept = lines[:2]
    (tmp_path / "records.jsonl").write_text("\n".join(kept) + "\n" + lines[2][:10])
    summary = run_suite(suite_from(SMALL), tmp_path, workers=1, resume=True)
    ids = [r["cell_id"] for r in read_records(tmp_path / "records.jsonl")]
    assert summary.already_done == 2
    assert sum(summary.counts.values()) == 2
    assert len(ids) == 4
    assert len(set(ids)) == 4
