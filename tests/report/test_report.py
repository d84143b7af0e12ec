"""Tests of the report: a hand-written run folder in, report.md, report.html and PNG figures out."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
from pathlib import Path
from typing import Any

import colorsys

import matplotlib.pyplot as plt
import numpy as np
import pytest
from PIL import Image

from otbench.report import figures, load_records, write_report
from otbench.report.axes import format_log_axis, format_symlog_axis, tick_at_sizes
from otbench.report.load import accuracy_frame
from otbench.report.tables import format_converged, format_mean_sd, shorten

COMMAND = ["otbench", "run", "benchmarks/quick.toml", "--out", "runs/quick"]

ENVIRONMENT = {
    "python": "3.11.7",
    "platform": "Linux-6.1-x86_64",
    "cpu_model": "Test CPU @ 2.0GHz",
    "cpu_count": 2,
    "workers": 2,
    "threads_per_worker": 1,
    "packages": {"torch": "2.13.0", "POT": "0.9.5", "geomloss": "0.3.0"},
    "git_commit": "0123abc",
    "started_at": "2026-01-01T00:00:00+00:00",
    "command": COMMAND,
}

SKIPPED = [
    {
        "block": "accuracy",
        "task": "accuracy",
        "estimator": "critic-gp",
        "problem": "gaussians",
        "p": 2,
        "reason": "dual critics estimate W_1 only; p=2 is not supported",
    }
]

CLASSIFIER_ACCURACY = 0.9667

ESTIMATOR_NAMES = {"exact": "exact", "sinkhorn-0.05": "sinkhorn", "critic-clip": "critic-clip", "critic-gp": "critic-gp"}


def make_record(
    task: str,
    estimator: str,
    seed: int,
    result: dict[str, Any] | None,
    *,
    status: str = "ok",
    message: str | None = None,
    problem: str | None = None,
    data: str | None = None,
    n: int | None = None,
    d: int | None = None,
    p: int = 2,
) -> dict[str, Any]:
    identity = json.dumps([task, estimator, seed, problem, data, n, d])
    cell_id = hashlib.sha256(identity.encode()).hexdigest()[:16]
    return {
        "cell_id": cell_id,
        "task": task,
        "estimator": estimator,
        "estimator_name": ESTIMATOR_NAMES[estimator],
        "estimator_params": {"p": p},
        "problem": problem,
        "problem_params": {"d": d} if problem is not None else {},
        "data": data,
        "n": n,
        "d": d,
        "p": p,
        "seed": seed,
        "status": status,
        "message": message,
        "wall_seconds": 0.5,
        "finished_at": "2026-01-01T00:01:00+00:00",
        "result": result,
    }


def accuracy_result(
    estimate: float,
    truth: float,
    inner_seconds: float,
    scale_known: bool = True,
    *,
    iterations: int | None = 40,
    converged: bool | None = True,
) -> dict[str, Any]:
    return {
        "estimate": estimate,
        "truth": truth,
        "relative_error": abs(estimate - truth) / truth if scale_known else None,
        "bias": estimate - truth if scale_known else None,
        "ratio": estimate / truth,
        "scale_known": scale_known,
        "inner_seconds": inner_seconds,
        "iterations": iterations,
        "converged": converged,
        "samples_used": 128,
    }


def cost_result(inner_median: float, peak_bytes: int | None) -> dict[str, Any]:
    return {
        "repeats": 3,
        "call_seconds": [2 * inner_median] * 3,
        "inner_seconds": [inner_median] * 3,
        "call_seconds_median": 2 * inner_median,
        "inner_seconds_median": inner_median,
        "peak_memory_bytes": peak_bytes,
        "threads": 1,
    }


def training_result(final_w2: float, inner_per_step: float, sample_shape: list[int], seed: int) -> dict[str, Any]:
    steps = [
        {"step": s, "loss": 3.0 / s, "inner_seconds": inner_per_step, "step_seconds": 0.05, "elapsed_seconds": 0.05 * s}
        for s in range(1, 5)
    ]
    evaluations = []
    for step, w2 in ((0, 4.0), (2, 1.5), (4, final_w2)):
        row = {"step": step, "elapsed_seconds": 0.05 * step, "w2_heldout": w2}
        if sample_shape == [2]:
            row.update({"hq_fraction": step / 5.0, "modes_covered": 2.0 * step})
        else:
            row.update({"frechet_distance": 10.0 * w2, "classifier_accuracy": CLASSIFIER_ACCURACY})
        evaluations.append(row)
    final = {key: value for key, value in evaluations[-1].items() if key not in ("step", "elapsed_seconds")}
    rng = np.random.default_rng(seed)
    if sample_shape == [2]:
        snapshot = rng.normal(size=(32, 2)).tolist()
    else:
        snapshot = np.tanh(rng.normal(size=(16, *sample_shape))).tolist()
    return {
        "steps": steps,
        "evaluations": evaluations,
        "final": final,
        "snapshot": snapshot,
        "sample_shape": sample_shape,
    }


def all_records() -> list[dict[str, Any]]:
    records = []

    # Accuracy on gaussians (d=2), truth W_2 = 2.
    for estimator, n, estimates, seconds in (
        ("exact", 64, (2.10, 2.20, 2.30), (0.001, 0.002, 0.003)),
        ("exact", 256, (2.02, 2.04, 2.06), (0.01, 0.02, 0.03)),
        ("sinkhorn-0.05", 64, (2.4, 2.5, 2.6), (0.004, 0.004, 0.004)),
        ("sinkhorn-0.05", 256, (2.2, 2.3), (0.01, 0.03)),
    ):
        for seed, (estimate, inner) in enumerate(zip(estimates, seconds)):
            records.append(
                make_record("accuracy", estimator, seed, accuracy_result(estimate, 2.0, inner),
                            problem="gaussians", n=n, d=2)
            )
    for seed, estimate in enumerate((1.5, 1.7)):
        records.append(
            make_record("accuracy", "exact", seed, accuracy_result(estimate, 1.6, 0.001),
                        problem="gaussians", n=64, d=2, p=1)
        )
    records.append(
        make_record("accuracy", "sinkhorn-0.05", 2, None, status="timeout",
                    message="cell timed out after 60 s", problem="gaussians", n=256, d=2)
    )
    for seed, estimate in enumerate((0.010, 0.012, 0.014)):
        records.append(
            make_record("accuracy", "critic-clip", seed,
                        accuracy_result(estimate, 2.0, 0.5, scale_known=False, iterations=None, converged=None),
                        problem="gaussians", n=64, d=2, p=1)
        )
    records.append(
        make_record("accuracy", "critic-clip", 0, None, status="error",
                    message="RuntimeError: boom\nTraceback (most recent call last): ...",
                    problem="gaussians", n=256, d=2, p=1)
    )
    records.append(
        make_record("accuracy", "critic-clip", 1,
                    accuracy_result(0.02, 2.0, 0.9, scale_known=False, iterations=None, converged=None),
                    problem="gaussians", n=256, d=2, p=1)
    )

    # Cost against n at d = 2.
    for estimator, n, medians, peaks in (
        ("exact", 100, (0.004, 0.006), (1 * 2**20, 3 * 2**20)),
        ("exact", 1000, (0.1, 0.3), (10 * 2**20, 20 * 2**20)),
        ("sinkhorn-0.05", 100, (0.010, 0.012), (2**20, 2**20)),
        ("sinkhorn-0.05", 1000, (0.02, 0.04), (4 * 2**20, 6 * 2**20)),
    ):
        for seed, (median, peak) in enumerate(zip(medians, peaks)):
            records.append(make_record("cost", estimator, seed, cost_result(median, peak), n=n, d=2))

    # Training on a 2-D mixture and on digits.
    for estimator, finals, inner in (("sinkhorn-0.05", (0.30, 0.40), 0.01), ("critic-gp", (0.9, 1.1), 0.03)):
        for seed, final in enumerate(finals):
            records.append(
                make_record("training", estimator, seed, training_result(final, inner, [2], seed),
                            data="8gaussians", n=64, d=2)
            )
    records.append(
        make_record("training", "sinkhorn-0.05", 0, training_result(50.0, 0.02, [1, 8, 8], 0),
                    data="digits", n=64, d=64)
    )
    return records


def write_run(run_dir: Path, records: list[dict[str, Any]], *, truncated: bool = True) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps(record) for record in records]
    text = "\n".join(lines) + "\n"
    if truncated:
        text += json.dumps(records[0])[:40]
    (run_dir / "records.jsonl").write_text(text)
    (run_dir / "environment.json").write_text(json.dumps(ENVIRONMENT))
    (run_dir / "resolved.json").write_text(json.dumps({"cells": [], "skipped": SKIPPED}))
    return run_dir


def table_rows(markdown: str) -> list[list[str]]:
    """Return the cells of every Markdown table row, stripped."""
    return [
        [cell.strip() for cell in line.strip().strip("|").split("|")]
        for line in markdown.splitlines()
        if line.startswith("|") and not set(line) <= set("|-: ")
    ]


def find_row(markdown: str, *leading: str) -> list[str]:
    matches = [row for row in table_rows(markdown) if row[: len(leading)] == list(leading)]
    assert len(matches) == 1, f"expected one row starting with {leading}, found {matches}"
    return matches[0]


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    run_dir = write_run(tmp_path_factory.mktemp("run"), all_records())
    path = write_report(run_dir)
    return path, path.read_text(encoding="utf-8"), (run_dir / "report.html").read_text(encoding="utf-8")


FIGURES = [
    "accuracy_vs_n.png",
    "bias_vs_n.png",
    "error_vs_seconds.png",
    "ratio_vs_n.png",
    "cost_vs_n.png",
    "quality_vs_steps.png",
    "quality_vs_time.png",
    "samples_8gaussians.png",
    "samples_digits.png",
]


def test_report_path_is_markdown(report: tuple[Path, str, str]) -> None:
    path, _, _ = report
    assert path.name == "report.md"
    assert path.is_file()
    assert (path.parent / "report.html").is_file()


@pytest.mark.parametrize("name", FIGURES)
def test_figure_is_valid_png(report: tuple[Path, str, str], name: str) -> None:
    path = report[0].parent / "figures" / name
    with Image.open(path) as image:
        image.verify()
        assert image.format == "PNG"
        assert image.size[0] > 100
        assert image.size[1] > 100


def test_only_expected_figures(report: tuple[Path, str, str]) -> None:
    names = sorted(p.name for p in (report[0].parent / "figures").iterdir())
    assert names == sorted(FIGURES)


def test_markdown_links_figures(report: tuple[Path, str, str]) -> None:
    _, markdown, _ = report
    for name in FIGURES:
        assert f"](figures/{name})" in markdown, name


def test_header_states_convention(report: tuple[Path, str, str]) -> None:
    _, markdown, _ = report
    assert "||x - y||_2^p" in markdown
    assert "units of the samples" in markdown


def test_header_shows_command(report: tuple[Path, str, str]) -> None:
    assert "Command: otbench run benchmarks/quick.toml --out runs/quick" in report[1]


def test_header_shows_environment(report: tuple[Path, str, str]) -> None:
    assert find_row(report[1], "packages.torch") == ["packages.torch", "2.13.0"]
    assert find_row(report[1], "cpu_model") == ["cpu_model", "Test CPU @ 2.0GHz"]


def test_accuracy_means_exact(report: tuple[Path, str, str]) -> None:
    row = find_row(report[1], "gaussians (d=2), p=2", "exact (p=2)", "default", "64")
    # estimates 2.1, 2.2, 2.3 against truth 2: relative errors 0.05, 0.10, 0.15.
    assert row[4:] == [
        "3", "2.2 ± 0.1", "2 ± 0", "0.2 ± 0.1", "0.1 ± 0.05", "n/a", "n/a", "0.002 ± 0.001", "128", "3 of 3",
    ]


def test_accuracy_order_separate_rows(report: tuple[Path, str, str]) -> None:
    # The same label run for p = 1: estimates 1.5 and 1.7 against truth 1.6.
    row = find_row(report[1], "gaussians (d=2), p=1", "exact (p=1)", "default", "64")
    assert row[4:7] == ["2", "1.6 ± 0.14", "1.6 ± 0"]


def test_accuracy_means_large_n(report: tuple[Path, str, str]) -> None:
    row = find_row(report[1], "gaussians (d=2), p=2", "exact (p=2)", "default", "256")
    assert row[8] == "0.02 ± 0.01"


def test_accuracy_skips_missing_results(report: tuple[Path, str, str]) -> None:
    # Seed 2 timed out, so only seeds 0 and 1 (relative errors 0.10 and 0.15) count.
    row = find_row(report[1], "gaussians (d=2), p=2", "sinkhorn-0.05", "default", "256")
    assert row[4] == "2"
    assert row[8] == "0.125 ± 0.035"


def test_accuracy_ratio_for_clip_critic(report: tuple[Path, str, str]) -> None:
    row = find_row(report[1], "gaussians (d=2), p=1", "critic-clip", "default", "64")
    assert row[8] == "ratio 0.006 ± 0.001 †"


def test_accuracy_ratio_footnote(report: tuple[Path, str, str]) -> None:
    assert "W_1 only up to an unknown factor" in report[1]


def test_accuracy_null_solve_fields(report: tuple[Path, str, str]) -> None:
    # The clip critic's records have iterations and converged null.
    row = find_row(report[1], "gaussians (d=2), p=1", "critic-clip", "default", "64")
    assert row[-1] == "n/a"


def test_accuracy_captions_name_left_out(report: tuple[Path, str, str]) -> None:
    captions = [line for line in report[1].splitlines() if line.startswith("*Relative error against")]
    assert len(captions) == 2
    for caption in captions:
        assert "Not drawn: critic-clip, whose scale is unknown" in caption
        assert "ratio estimate / truth" in caption


def test_cost_row_means(report: tuple[Path, str, str]) -> None:
    row = find_row(report[1], "exact", "100", "2", "2")
    # medians 0.004 and 0.006 s; peaks 1 and 3 MiB.
    assert row[4:] == ["2", "0.005 ± 0.0014", "0.01 ± 0.0028", "2 ± 1.4"]


def test_cost_row_large_n(report: tuple[Path, str, str]) -> None:
    row = find_row(report[1], "sinkhorn-0.05", "1000", "2", "2")
    assert row[5] == "0.03 ± 0.014"


def test_training_row_means(report: tuple[Path, str, str]) -> None:
    header = next(row for row in table_rows(report[1]) if row[:2] == ["estimator", "data"])
    row = find_row(report[1], "sinkhorn-0.05", "8gaussians")
    values = dict(zip(header, row))
    assert values["w2_heldout"] == "0.35 ± 0.071"
    assert values["hq_fraction"] == "0.8 ± 0"
    assert values["total inner seconds"] == "0.04 ± 0"
    assert values["training seconds"] == "0.2 ± 0"
    assert values["seeds"] == "2"


def test_training_single_seed_row(report: tuple[Path, str, str]) -> None:
    header = next(row for row in table_rows(report[1]) if row[:2] == ["estimator", "data"])
    values = dict(zip(header, find_row(report[1], "sinkhorn-0.05", "digits")))
    assert values["w2_heldout"] == "50"
    assert values["frechet_distance"] == "500"
    assert values["hq_fraction"] == ""


def test_training_table_omits_classifier(report: tuple[Path, str, str]) -> None:
    header = next(row for row in table_rows(report[1]) if row[:2] == ["estimator", "data"])
    assert "classifier_accuracy" not in header


def test_training_states_classifier_once(report: tuple[Path, str, str]) -> None:
    sentence = "between Gaussians fitted to the features of a digits classifier with held-out accuracy 0.9667"
    assert report[1].count(sentence) == 1


def test_status_counts(report: tuple[Path, str, str]) -> None:
    header = next(row for row in table_rows(report[1]) if row[:2] == ["task", "estimator"] and "ok" in row)
    assert header == ["task", "estimator", "ok", "not_converged", "timeout", "out_of_memory", "error", "total"]
    assert find_row(report[1], "accuracy", "sinkhorn-0.05", "5") == [
        "accuracy", "sinkhorn-0.05", "5", "0", "1", "0", "0", "6"
    ]
    assert find_row(report[1], "accuracy", "critic-clip", "4")[6:] == ["1", "5"]
    assert find_row(report[1], "accuracy", "exact", "8")[-1] == "8"


def test_failure_message_shortened(report: tuple[Path, str, str]) -> None:
    row = find_row(report[1], "accuracy", "critic-clip", "gaussians")
    assert row[-2:] == ["error", "RuntimeError: boom…"]
    assert "Traceback" not in report[1]


def test_skipped_section(report: tuple[Path, str, str]) -> None:
    assert "## Skipped combinations" in report[1]
    assert "dual critics estimate W_1 only; p=2 is not supported" in report[1]


def test_html_embeds_figures(report: tuple[Path, str, str]) -> None:
    html = report[2]
    assert html.count('src="data:image/png;base64,') == len(FIGURES)


def test_html_has_no_links(report: tuple[Path, str, str]) -> None:
    html = report[2]
    assert "http" not in html
    assert re.findall(r'(?:src|href)="(?!data:)', html) == []


def test_html_contains_tables(report: tuple[Path, str, str]) -> None:
    html = report[2]
    assert "<table" in html
    assert "0.1 ± 0.05" in html
    assert "<style>" in html


def test_load_records_skips_truncated_line(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    records = all_records()
    write_run(tmp_path, records)
    with caplog.at_level(logging.WARNING, logger="otbench.report"):
        frame = load_records(tmp_path)
    assert len(frame) == len(records)
    assert "truncated last line" in caplog.text


def test_load_records_keeps_rows(tmp_path: Path) -> None:
    write_run(tmp_path, all_records(), truncated=False)
    frame = load_records(tmp_path)
    assert len(frame) == len(all_records())
    assert set(frame["task"]) == {"accuracy", "cost", "training"}


def test_series_split_by_order(tmp_path: Path) -> None:
    records = [
        make_record("accuracy", "exact", 0, accuracy_result(2.0, 2.0, 0.01), problem="g", n=8, d=1, p=p)
        for p in (1, 2)
    ]
    records.append(make_record("accuracy", "sinkhorn-0.05", 0, accuracy_result(2.0, 2.0, 0.01), problem="g", n=8, d=1))
    write_run(tmp_path, records, truncated=False)
    frame = accuracy_frame(load_records(tmp_path))
    assert sorted(frame["series"]) == ["exact (p=1)", "exact (p=2)", "sinkhorn-0.05"]


def test_load_records_flattens_result(tmp_path: Path) -> None:
    write_run(tmp_path, all_records(), truncated=False)
    frame = load_records(tmp_path)
    first = frame.iloc[0]
    assert first["result.estimate"] == 2.10
    assert first["problem_params.d"] == 2
    assert first["estimator_params.p"] == 2


def test_missing_records_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"records\.jsonl is missing"):
        write_report(tmp_path)


def test_empty_records_rejected(tmp_path: Path) -> None:
    (tmp_path / "records.jsonl").write_text("\n")
    with pytest.raises(ValueError, match=r"records\.jsonl contains no record"):
        load_records(tmp_path)


def test_corrupt_middle_line_rejected(tmp_path: Path) -> None:
    records = [json.dumps(record) for record in all_records()[:3]]
    (tmp_path / "records.jsonl").write_text("\n".join([records[0], "{not json", records[1]]) + "\n")
    with pytest.raises(ValueError, match=r"line 2 of .*records\.jsonl is not valid JSON"):
        load_records(tmp_path)


def test_cost_only_run(tmp_path: Path) -> None:
    records = [record for record in all_records() if record["task"] == "cost"]
    write_run(tmp_path, records, truncated=False)
    (tmp_path / "resolved.json").unlink()
    markdown = write_report(tmp_path).read_text(encoding="utf-8")
    assert "## Cost" in markdown
    assert "## Accuracy" not in markdown
    assert "## Training" not in markdown
    assert "## Skipped combinations" not in markdown
    assert sorted(p.name for p in (tmp_path / "figures").iterdir()) == ["cost_vs_n.png"]


def test_format_mean_sd_values() -> None:
    assert format_mean_sd([1.0, 2.0, 3.0]) == "2 ± 1"
    assert format_mean_sd([0.5]) == "0.5"
    assert format_mean_sd([None, math.nan]) == ""
    assert format_mean_sd([1.0, None, 3.0]) == "2 ± 1.4"


def test_shorten_message() -> None:
    assert shorten("first line\nsecond line") == "first line…"
    assert shorten("x" * 200, length=10) == "x" * 9 + "…"
    assert shorten(None) == ""


def test_format_converged_values() -> None:
    assert format_converged([True, False, True]) == "2 of 3"
    assert format_converged([None, None]) == "n/a"
    assert format_converged([True, None]) == "1 of 1"


def test_accuracy_frame_keeps_null_flags(tmp_path: Path) -> None:
    records = [
        make_record("accuracy", "critic-gp", seed, accuracy_result(2.2, 2.0, 0.1, iterations=None, converged=None),
                    problem="g", n=8, d=1, p=1)
        for seed in (0, 1)
    ]
    write_run(tmp_path, records, truncated=False)
    frame = accuracy_frame(load_records(tmp_path))
    assert list(frame["converged"]) == [None, None]
    assert bool(frame["iterations"].isna().all())


def test_all_null_solve_fields_render(tmp_path: Path) -> None:
    records = [
        make_record("accuracy", "critic-gp", seed, accuracy_result(2.2, 2.0, 0.1, iterations=None, converged=None),
                    problem="g", n=8, d=1, p=1)
        for seed in (0, 1)
    ]
    write_run(tmp_path, records, truncated=False)
    markdown = write_report(tmp_path).read_text(encoding="utf-8")
    row = find_row(markdown, "g (d=1), p=1", "critic-gp", "default", "8")
    assert row[-1] == "n/a"


def hue(colour: Any) -> float:
    return colorsys.rgb_to_hls(*colour[:3])[0]


def test_palette_keeps_estimator_hue() -> None:
    palette = figures.estimator_palette(["exact", "exact (p=1)", "exact (p=2)", "sinkhorn", "sinkhorn (p=2)"])
    for name in ("exact (p=1)", "exact (p=2)"):
        assert hue(palette[name]) == pytest.approx(hue(palette["exact"]), abs=0.02)
    assert hue(palette["sinkhorn (p=2)"]) == pytest.approx(hue(palette["sinkhorn"]), abs=0.02)
    assert hue(palette["exact"]) != pytest.approx(hue(palette["sinkhorn"]), abs=0.02)


def test_palette_colours_distinct() -> None:
    palette = figures.estimator_palette(["exact (p=1)", "exact (p=2)", "sinkhorn", "critic-gp", "critic-clip"])
    colours = [tuple(round(c, 3) for c in colour) for colour in palette.values()]
    assert len(set(colours)) == len(colours)


def test_palette_independent_of_task() -> None:
    # Accuracy splits exact by p, cost does not; the report builds one palette from both.
    palette = figures.estimator_palette(["exact (p=1)", "exact (p=2)", "sinkhorn"] + ["exact", "sinkhorn"])
    assert palette["exact"] == figures.estimator_palette(["exact", "sinkhorn"])["exact"]
    assert palette["sinkhorn"] == figures.estimator_palette(["exact", "sinkhorn"])["sinkhorn"]


def test_palette_shades_ordered_by_p() -> None:
    palette = figures.estimator_palette(["exact (p=2)", "exact (p=1)"])
    lightness = [colorsys.rgb_to_hls(*palette[name][:3])[1] for name in ("exact (p=1)", "exact (p=2)")]
    assert lightness[0] < lightness[1]


def visible_labels(ax: Any, axis_name: str) -> tuple[list[str], list[str]]:
    """Return the non-empty major and minor tick labels inside the view of an axis."""
    ax.figure.canvas.draw()
    axis = ax.xaxis if axis_name == "x" else ax.yaxis
    low, high = sorted(ax.get_xlim() if axis_name == "x" else ax.get_ylim())

    def labels(ticks: list[Any]) -> list[str]:
        return [t.label1.get_text() for t in ticks if low <= t.get_loc() <= high and t.label1.get_text()]

    return labels(axis.get_major_ticks()), labels(axis.get_minor_ticks())


@pytest.fixture
def log_axes() -> Any:
    fig, ax = plt.subplots(figsize=figures.PANEL_SIZE)
    yield ax
    plt.close(fig)


def test_log_axis_seconds_decades(log_axes: Any) -> None:
    log_axes.plot([0.03, 0.5], [1.0, 2.0])
    log_axes.set_xscale("log")
    format_log_axis(log_axes, "x", decades_only=True)
    major, minor = visible_labels(log_axes, "x")
    assert major == ["0.01", "0.1", "1"]
    assert minor == []


def test_log_axis_seconds_many_decades(log_axes: Any) -> None:
    log_axes.plot([0.002, 15.0], [1.0, 2.0])
    log_axes.set_xscale("log")
    format_log_axis(log_axes, "x", decades_only=True)
    major, minor = visible_labels(log_axes, "x")
    assert major == ["0.01", "0.1", "1", "10"]
    assert minor == []


def test_log_axis_under_decade(log_axes: Any) -> None:
    log_axes.plot([1.0, 2.0], [0.8, 3.2])
    log_axes.set_yscale("log")
    format_log_axis(log_axes, "y")
    major, minor = visible_labels(log_axes, "y")
    assert major == ["1", "2"]
    assert minor == []


def test_log_axis_narrow_range(log_axes: Any) -> None:
    log_axes.plot([1.0, 2.0], [1.05, 1.7])
    log_axes.set_yscale("log")
    format_log_axis(log_axes, "y")
    major, minor = visible_labels(log_axes, "y")
    assert len(major) >= 2
    assert minor == []


def test_sizes_close_lose_label(log_axes: Any) -> None:
    log_axes.plot([100, 10000], [1.0, 2.0])
    log_axes.set_xscale("log")
    tick_at_sizes(log_axes, [100, 105, 1000, 10000])
    major, minor = visible_labels(log_axes, "x")
    assert major == ["100", "1000", "10000"]
    assert minor == []


def test_symlog_axis_shows_zero(log_axes: Any) -> None:
    log_axes.plot([1.0, 2.0, 3.0], [0.0, 5.0, 150.0])
    format_symlog_axis(log_axes, "y", 1.0)
    major, _ = visible_labels(log_axes, "y")
    assert log_axes.get_ylim()[0] == 0
    assert major == ["0", "1", "10", "100"]


def test_one_panel_min_width() -> None:
    fig, axes = figures._panels(1)
    assert len(axes) == 1
    assert fig.get_figwidth() >= figures.MIN_WIDTH
    plt.close(fig)


def test_one_panel_title_clear_of_legend() -> None:
    fig, axes = figures._panels(1)
    axes[0].plot([64, 128], [0.2, 1.0])
    axes[0].set_title(figures._wrap("translation (d=2, paired=False, shift=1.0)"))
    names = ["critic-gp", "exact (p=1)", "exact (p=2)", "sinkhorn (p=1)", "sinkhorn (p=2)"]
    legend = figures._add_legend(fig, figures.estimator_palette(names), names)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    title_box = axes[0].title.get_window_extent(renderer)
    legend_box = legend.get_window_extent(renderer)
    plt.close(fig)
    assert title_box.x1 < legend_box.x0


def test_one_panel_cost_png_width(tmp_path: Path) -> None:
    records = [record for record in all_records() if record["task"] == "cost"]
    write_run(tmp_path, records, truncated=False)
    write_report(tmp_path)
    with Image.open(tmp_path / "figures" / "cost_vs_n.png") as image:
        assert image.size[0] >= figures.MIN_WIDTH * figures.DPI - 1


def test_memory_zero_and_missing_noted(tmp_path: Path) -> None:
    records = [
        make_record("cost", "exact", 0, cost_result(0.01, 0), n=100, d=2),
        make_record("cost", "exact", 0, cost_result(0.1, 8 * 2**20), n=1000, d=2),
        make_record("cost", "sinkhorn-0.05", 0, cost_result(0.02, None), n=100, d=2),
        make_record("cost", "sinkhorn-0.05", 0, cost_result(0.05, 2**20), n=1000, d=2),
    ]
    write_run(tmp_path, records, truncated=False)
    markdown = write_report(tmp_path).read_text(encoding="utf-8")
    assert "No measurable increase (0 MiB) in 1 of 4 cells: exact at n = 100." in markdown
    assert "No memory value in 1 of 4 cells: sinkhorn-0.05 at n = 100." in markdown
    assert (tmp_path / "figures" / "cost_vs_n.png").is_file()

