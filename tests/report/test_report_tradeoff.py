"""The accuracy-cost trade-off in reports: Pareto fronts, the summary table, sweeps against n."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from otbench.report import figures, write_report
from otbench.report.load import budget_label
from otbench.report.tables import summary_table


def test_front_keeps_cheaper_better_points():
    front = figures.pareto_front([1.0, 2.0, 3.0, 4.0], [0.5, 0.6, 0.2, 0.3])
    assert front["inner_seconds"].tolist() == [1.0, 3.0]


def test_front_higher_better():
    front = figures.pareto_front([1.0, 2.0, 3.0], [0.5, 0.9, 0.7], higher_better=True)
    assert front["value"].tolist() == [0.5, 0.9]


def test_front_tie_in_seconds_keeps_better():
    front = figures.pareto_front([1.0, 1.0], [0.4, 0.3])
    assert front["value"].tolist() == [0.3]


def test_front_ignores_missing():
    front = figures.pareto_front([1.0, 2.0], [float("nan"), 0.3])
    assert front["value"].tolist() == [0.3]


def test_budget_label_sorted():
    assert budget_label({"scaling": 0.9, "blur": 0.05}) == "blur=0.05, scaling=0.9"


def test_budget_label_default():
    assert budget_label({}) == "default"


def frame(rows: list[tuple]) -> pd.DataFrame:
    columns = ["series", "problem_label", "budget_label", "n", "seed", "relative_error", "cosine", "inner_seconds"]
    data = pd.DataFrame(rows, columns=columns)
    data["gradient_error"] = 0.1
    data["ratio"] = 1.0 + data["relative_error"]
    data["scale_known"] = True
    return data


SWEEP = frame([
    ("sinkhorn", "a", "blur=0.5", 64, 0, 0.40, 0.9, 0.01),
    ("sinkhorn", "a", "blur=0.05", 64, 0, 0.10, 0.8, 0.10),
    ("sinkhorn", "b", "blur=0.5", 64, 0, 0.20, 0.7, 0.01),
    ("sinkhorn", "b", "blur=0.05", 64, 0, 0.30, 0.6, 0.20),
    ("sinkhorn", "c", "blur=0.5", 64, 0, 0.05, 0.5, 0.01),
    ("sinkhorn", "c", "blur=0.05", 64, 0, 0.50, 0.4, 0.30),
])


def test_summary_uses_largest_budget():
    row = summary_table(SWEEP).iloc[0]
    # blur=0.05 is the most expensive on every problem: errors 0.10, 0.30, 0.50.
    assert row["median relative error"] == "0.3"


def test_summary_mean_cosine():
    assert summary_table(SWEEP).iloc[0]["mean cosine"] == "0.6"


def test_summary_best_error():
    # the lowest error per problem: 0.10, 0.20, 0.05
    assert summary_table(SWEEP).iloc[0]["best relative error"] == "0.1"


def test_n_sweep_keeps_budget_with_most_sizes():
    data = frame([
        ("exact", "a", "default", 64, 0, 0.3, 0.9, 0.01),
        ("exact", "a", "default", 256, 0, 0.2, 0.9, 0.02),
        ("exact", "a", "other", 64, 0, 0.1, 0.9, 0.01),
    ])
    assert set(figures.n_sweep(data)["budget_label"]) == {"default"}


def test_n_sweep_empty_for_one_size():
    assert figures.n_sweep(SWEEP).empty


def record(estimator: str, budget: dict, seed: int, error: float, seconds: float, cosine: float) -> dict:
    return {
        "cell_id": f"{estimator}{seed}{seconds}",
        "task": "accuracy",
        "estimator": estimator,
        "estimator_name": estimator,
        "estimator_params": {"p": 1, **budget},
        "budget": budget,
        "problem": "funnels",
        "problem_params": {"d": 2},
        "data": None,
        "n": 64,
        "d": 2,
        "p": 1,
        "seed": seed,
        "status": "ok",
        "message": None,
        "wall_seconds": 1.0,
        "finished_at": "2026-01-01T00:00:00+00:00",
        "result": {
            "estimate": 1.0 + error, "truth": 1.0, "truth_stderr": 0.001, "bias": error,
            "relative_error": error, "ratio": 1.0 + error, "scale_known": True, "inner_seconds": seconds,
            "iterations": None, "converged": None, "samples_used": 128, "calls": 1,
            "cosine": cosine, "gradient_error": 0.5,
        },
    }


@pytest.fixture(scope="module")
def sweep_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    root = tmp_path_factory.mktemp("sweep")
    records = [
        record("critic-gp", {"critic_steps": steps}, seed, error, seconds, cosine)
        for steps, error, seconds, cosine in ((100, 0.5, 0.1, 0.3), (1000, 0.2, 1.0, 0.8))
        for seed in (0, 1)
    ]
    (root / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    path = write_report(root)
    return root, path.read_text(encoding="utf-8")


def test_sweep_report_draws_fronts(sweep_report: tuple[Path, str]):
    root, _ = sweep_report
    assert sorted(p.name for p in (root / "figures").iterdir()) == ["cosine_vs_seconds.png", "error_vs_seconds.png"]


def test_sweep_report_lists_budgets(sweep_report: tuple[Path, str]):
    _, markdown = sweep_report
    assert "| critic_steps=1000 |" in markdown


def test_sweep_report_shows_truth_stderr(sweep_report: tuple[Path, str]):
    assert "1 ± 0 (se 0.001)" in sweep_report[1]


def test_bias_figure_needs_sizes(tmp_path: Path):
    data = frame([
        ("exact", "a", "default", 64, 0, 0.3, 0.9, 0.01),
        ("exact", "a", "default", 256, 0, 0.2, 0.9, 0.02),
    ])
    data["bias"] = [0.3, 0.2]
    data["truth"] = 1.0
    palette = figures.estimator_palette(["exact"])
    assert figures.bias_vs_n(data, palette, tmp_path / "bias.png") == tmp_path / "bias.png"


def test_bias_figure_skipped_for_one_size(tmp_path: Path):
    data = SWEEP.assign(bias=0.1, truth=1.0)
    palette = figures.estimator_palette(["sinkhorn"])
    assert figures.bias_vs_n(data, palette, tmp_path / "bias.png") is None


def test_n_sweep_tie_goes_to_most_expensive():
    data = frame([
        ("critic-lp", "a", "critic_steps=100", 64, 0, 0.6, 0.5, 0.1),
        ("critic-lp", "a", "critic_steps=100", 128, 0, 0.5, 0.5, 0.2),
        ("critic-lp", "a", "critic_steps=300", 64, 0, 0.2, 0.8, 0.3),
        ("critic-lp", "a", "critic_steps=300", 128, 0, 0.1, 0.8, 0.6),
    ])
    assert set(figures.n_sweep(data)["budget_label"]) == {"critic_steps=300"}


def test_natural_key_orders_numbers():
    from otbench.report.tables import natural_key

    labels = ["projections=200", "projections=10", "projections=50"]
    assert sorted(labels, key=natural_key) == ["projections=10", "projections=50", "projections=200"]
