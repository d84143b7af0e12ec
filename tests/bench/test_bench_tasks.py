"""Tasks on tiny real cells: record schema, statuses and failure handling."""

from __future__ import annotations

import json

import pytest

from otbench.bench import RECORD_KEYS, run_cell

ACCURACY_KEYS = {
    "estimate", "truth", "relative_error", "ratio", "scale_known",
    "inner_seconds", "iterations", "converged", "samples_used", "calls",
}
COST_KEYS = {
    "repeats", "call_seconds", "inner_seconds", "call_seconds_median",
    "inner_seconds_median", "peak_memory_bytes", "threads", "dtype", "device",
}
TRAINING_KEYS = {"steps", "evaluations", "final", "snapshot", "sample_shape", "not_converged_steps"}
STEP_KEYS = {"step", "loss", "inner_seconds", "step_seconds", "elapsed_seconds"}


def make_cell(task: str, estimator: str = "exact", **overrides):
    cell = {
        "cell_id": "0123456789abcdef",
        "task": task,
        "estimator": estimator,
        "estimator_name": estimator,
        "estimator_params": {"p": 1},
        "problem": None,
        "problem_params": {},
        "data": None,
        "n": 32,
        "d": 2,
        "p": 1,
        "seed": 0,
        "settings": {},
        "time_limit": 60.0,
    }
    if task == "accuracy":
        cell.update(problem="translation", problem_params={"d": 2, "shift": 1.0}, settings={"critic_steps": 4})
    elif task == "cost":
        cell.update(settings={"repeats": 2, "device": "cpu"})
    else:
        cell.update(data="8gaussians", n=16, settings={"steps": 2, "batch_size": 16, "eval_every": 1, "n_eval": 64, "n_snapshot": 8})
    cell.update(overrides)
    return cell


def check_common(record):
    assert set(RECORD_KEYS) <= set(record)
    assert json.loads(json.dumps(record, allow_nan=False)) == record
    assert record["wall_seconds"] >= 0


def test_accuracy_record_exact():
    record = run_cell(make_cell("accuracy", estimator_params={"p": 2}, p=2))
    check_common(record)
    result = record["result"]
    assert record["status"] == "ok"
    assert record["message"] is None
    assert ACCURACY_KEYS <= set(result)
    assert result["truth"] == pytest.approx(1.0)
    assert result["relative_error"] == pytest.approx(abs(result["estimate"] - 1.0))
    assert result["samples_used"] == 64
    assert result["converged"] is True


def test_accuracy_critic_steps_total():
    cell = make_cell("accuracy", "critic-gp", estimator_params={"p": 1, "n_critic": 3}, settings={"critic_steps": 7})
    record = run_cell(cell)
    assert record["status"] == "ok"
    assert record["result"]["iterations"] == 9  # ceil(7 / 3) calls of 3 steps
    assert record["result"]["calls"] == 3


def test_accuracy_critic_converged_null():
    cell = make_cell("accuracy", "critic-clip", estimator_params={"p": 1, "n_critic": 2})
    record = run_cell(cell)
    assert record["status"] == "ok"
    assert record["message"] is None
    assert record["result"]["converged"] is None


def test_accuracy_exact_iterations_null():
    result = run_cell(make_cell("accuracy"))["result"]
    assert result["iterations"] is None
    assert result["converged"] is True


def test_accuracy_clip_scale_unknown():
    cell = make_cell("accuracy", "critic-clip", estimator_params={"p": 1, "n_critic": 2})
    result = run_cell(cell)["result"]
    assert result["scale_known"] is False
    assert result["relative_error"] is None
    assert result["ratio"] == pytest.approx(result["estimate"] / result["truth"])


def test_accuracy_not_converged_keeps_numbers():
    record = run_cell(make_cell("accuracy", estimator_params={"p": 1, "max_iter": 1}))
    assert record["status"] == "not_converged"
    assert record["result"]["estimate"] is not None
    assert "max_iter=1" in record["message"]


def test_cost_record():
    record = run_cell(make_cell("cost", "sinkhorn", estimator_params={"p": 1, "blur": 0.5}))
    check_common(record)
    result = record["result"]
    assert record["status"] in ("ok", "not_converged")
    assert COST_KEYS <= set(result)
    assert len(result["call_seconds"]) == 2
    assert len(result["inner_seconds"]) == 2
    assert result["call_seconds_median"] > 0
    assert result["threads"] >= 1
    assert result["dtype"] == "float32"
    assert result["device"] == "cpu"


def test_cost_critic_status_ok():
    record = run_cell(make_cell("cost", "critic-gp", estimator_params={"p": 1, "n_critic": 1}, n=16))
    assert record["status"] == "ok"
    assert record["message"] is None


def test_cost_not_converged_counts():
    record = run_cell(make_cell("cost", estimator_params={"p": 1, "max_iter": 1}))
    assert record["status"] == "not_converged"
    assert record["message"].startswith("2 of 2 timed solves did not converge")


def test_cost_peak_memory_linux():
    result = run_cell(make_cell("cost", n=512))["result"]
    assert result["peak_memory_bytes"] is not None
    assert result["peak_memory_bytes"] >= 0


def test_training_record():
    record = run_cell(make_cell("training", "sinkhorn", estimator_params={"p": 1, "blur": 0.5}))
    check_common(record)
    result = record["result"]
    assert record["status"] == "ok"
    assert TRAINING_KEYS <= set(result)
    assert len(result["steps"]) == 2
    assert STEP_KEYS <= set(result["steps"][0])
    assert result["sample_shape"] == [2]
    assert len(result["snapshot"]) == 8
    assert len(result["snapshot"][0]) == 2
    assert "w2_heldout" in result["final"]
    assert record["d"] == 2


def test_training_critic_no_failed_steps():
    cell = make_cell("training", "critic-gp", estimator_params={"p": 1, "n_critic": 1})
    record = run_cell(cell)
    assert record["status"] == "ok"
    assert record["result"]["not_converged_steps"] == 0


def test_training_counts_failed_steps():
    cell = make_cell("training", estimator_params={"p": 1, "max_iter": 1})
    record = run_cell(cell)
    assert record["status"] == "ok"
    assert record["result"]["not_converged_steps"] == 2


def test_out_of_memory_param():
    record = run_cell(make_cell("accuracy", estimator_params={"p": 1, "memory_budget": 1000}))
    assert record["status"] == "out_of_memory"
    assert record["message"].startswith("MemoryBudgetError:")
    assert record["result"] is None


def test_out_of_memory_environment(monkeypatch):
    monkeypatch.setenv("OTBENCH_MEMORY_BUDGET", "1000")
    record = run_cell(make_cell("cost"))
    assert record["status"] == "out_of_memory"
    assert "memory budget" in record["message"]


def test_error_status_message():
    record = run_cell(make_cell("accuracy", problem_params={"d": 0}))
    check_common(record)
    assert record["status"] == "error"
    assert record["message"].startswith("ValueError: d=0")
    assert record["result"] is None
