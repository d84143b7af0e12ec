"""The runner: run folder files, time limits, dead workers and existing records."""

from __future__ import annotations

import json
import os
import signal
import textwrap

import pytest

from otbench.bench import RunFolderError, SuiteError, parse_suite, read_records, run_suite

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
    # The worker may finish the first cell and take the next before the signal
    # lands, so the error belongs to whichever cell was running at the kill.
    errors = [r for r in records.values() if r["status"] == "error"]
    assert len(records) == 4
    assert len(killed) == 1
    assert len(errors) == 1
    assert "exited with code -9" in errors[0]["message"]
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


ALL_SKIPPED = """
name = "skipped"
[estimators.critic-gp]
[[accuracy]]
problem = "translation"
params = { d = 2 }
n = 16
p = 2
"""


def make_run_folder(run_dir, cell_ids):
    """Write the files of a run folder whose resolved suite has ``cell_ids``."""
    run_dir.mkdir()
    cells = [{"cell_id": cell_id} for cell_id in cell_ids]
    (run_dir / "resolved.json").write_text(json.dumps({"cells": cells, "skipped": []}))
    (run_dir / "records.jsonl").write_text(json.dumps({"cell_id": cell_ids[0]}) + "\n")
    (run_dir / "suite.toml").write_text("# the first suite\n")
    (run_dir / "environment.json").write_text('{"started_at": "2024-01-01T00:00:00+00:00"}\n')


def folder_bytes(run_dir):
    return {path.name: path.read_bytes() for path in sorted(run_dir.iterdir())}


def test_out_dir_is_file(tmp_path):
    out = tmp_path / "plain"
    out.write_text("")
    with pytest.raises(RunFolderError, match=f"output folder {out} exists and is not a folder"):
        run_suite(suite_from(SMALL), out, workers=1)


def test_out_dir_under_file(tmp_path):
    (tmp_path / "plain").write_text("")
    out = tmp_path / "plain" / "run"
    with pytest.raises(RunFolderError, match=f"because {tmp_path / 'plain'} is not a folder"):
        run_suite(suite_from(SMALL), out, workers=1)


def test_records_path_is_folder(tmp_path):
    (tmp_path / "records.jsonl").mkdir()
    with pytest.raises(RunFolderError, match="records.jsonl exists and is not a file"):
        run_suite(suite_from(SMALL), tmp_path, workers=1)


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write to any folder")
def test_out_dir_not_writable(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    with pytest.raises(RunFolderError, match="is not writable"):
        run_suite(suite_from(SMALL), locked / "run", workers=1)


def test_all_skipped_suite_error(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(SuiteError) as caught:
        run_suite(suite_from(ALL_SKIPPED), out, workers=1)
    message = str(caught.value)
    assert "no valid cell to run: all 1 combinations are skipped" in message
    assert 'accuracy[0]: estimator "critic-gp" supports p in [1] only (1 skipped)' in message
    assert not out.exists()


def test_resume_other_suite_rejected(tmp_path):
    run_dir = tmp_path / "run"
    make_run_folder(run_dir, ["0000000000000000", "1111111111111111"])
    before = folder_bytes(run_dir)
    with pytest.raises(RunFolderError) as caught:
        run_suite(suite_from(SMALL), run_dir, workers=1, resume=True)
    message = str(caught.value)
    assert f"does not match the run in {run_dir}" in message
    assert "4 of its 4 cells are not in" in message
    assert "2 of the run's 2 cells are not in the suite" in message
    assert folder_bytes(run_dir) == before


def test_resume_unreadable_resolved(tmp_path):
    run_dir = tmp_path / "run"
    make_run_folder(run_dir, ["0000000000000000"])
    (run_dir / "resolved.json").write_text("{not json")
    before = folder_bytes(run_dir)
    with pytest.raises(RunFolderError, match="cannot read the cells of"):
        run_suite(suite_from(SMALL), run_dir, workers=1, resume=True)
    assert folder_bytes(run_dir) == before


@pytest.mark.slow
def test_resume_keeps_environment(tmp_path):
    run_suite(suite_from(SMALL), tmp_path, workers=1)
    first = json.loads((tmp_path / "environment.json").read_text())
    longer = SMALL.replace('seeds = [0]', 'seeds = [0]\ntime_limit = 900')
    summary = run_suite(suite_from(longer), tmp_path, workers=1, resume=True)
    environment = json.loads((tmp_path / "environment.json").read_text())
    resolved = json.loads((tmp_path / "resolved.json").read_text())
    assert summary.already_done == 4
    assert sum(summary.counts.values()) == 0
    assert environment["started_at"] == first["started_at"]
    assert environment["command"] == first["command"]
    assert len(environment["resumed_at"]) == 1
    assert all(cell["time_limit"] == 900 for cell in resolved["cells"])
