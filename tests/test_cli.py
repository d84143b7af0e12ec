"""The otbench command line, in process and as a subprocess."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from otbench.bench import read_records
from otbench.cli import main

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "benchmarks" / "tiny.toml"


def otbench(*args: str, **kwargs) -> subprocess.CompletedProcess:
    """Run ``python -m otbench.cli`` from the repository root."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "otbench.cli", *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300, **kwargs,
    )


def record_ids(run_dir: Path) -> list[str]:
    lines = (run_dir / "records.jsonl").read_text().splitlines()
    return [json.loads(line)["cell_id"] for line in lines]


def resolved_ids(run_dir: Path) -> list[str]:
    return [cell["cell_id"] for cell in json.loads((run_dir / "resolved.json").read_text())["cells"]]


@pytest.mark.parametrize("command", [[], ["run"], ["report"], ["list"], ["estimate"], ["train"]])
def test_help_each_command(command, capsys):
    with pytest.raises(SystemExit) as caught:
        main([*command, "--help"])
    assert caught.value.code == 0
    assert "usage: otbench" in capsys.readouterr().out


def test_run_help_units(capsys):
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    out = capsys.readouterr().out
    assert "torch threads" in out
    assert "--resume" in out


def test_list_prints_components(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in ("exact", "sinkhorn", "critic-clip", "critic-gp", "translation", "gaussians", "digits"):
        assert name in out


def test_list_capability_columns(capsys):
    assert main(["list"]) == 0
    header = capsys.readouterr().out.splitlines()[1]
    assert "scale known" in header
    assert "images" in header


def test_estimate_table(capsys):
    code = main(["estimate", "exact", "--problem", "translation", "--n", "64", "--p", "2",
                 "--problem-param", "d=3", "--problem-param", "shift=2.0"])
    out = " ".join(capsys.readouterr().out.split())
    assert code == 0
    assert "truth 2 " in out
    assert "relative error" in out
    assert "converged yes" in out


def test_estimate_critic_converged_na(capsys):
    code = main(["estimate", "critic-gp", "--problem", "translation", "--n", "32",
                 "--critic-steps", "4", "--param", "n_critic=2"])
    out = " ".join(capsys.readouterr().out.split())
    assert code == 0
    assert "converged n/a" in out
    assert "iterations 4" in out


def test_estimate_exact_iterations_na(capsys):
    assert main(["estimate", "exact", "--problem", "translation", "--n", "16"]) == 0
    assert "iterations n/a" in " ".join(capsys.readouterr().out.split())


def test_estimate_gradient_rows(capsys):
    # On a paired translation the exact plan is the pairing, so the gradient is the true one.
    assert main(["estimate", "exact", "--problem", "translation", "--n", "16",
                 "--problem-param", "paired=true"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "gradient cosine 1 " in out
    assert "gradient error 0 " in out


def test_estimate_monte_carlo_truth(capsys):
    assert main(["estimate", "exact", "--problem", "funnels", "--n", "16"]) == 0
    assert "Monte Carlo standard error" in capsys.readouterr().out


@pytest.mark.parametrize("mode, samples", [("fresh", 2 * 2 * 16), ("fixed", 2 * 16)])
def test_estimate_critic_data(capsys, mode: str, samples: int):
    assert main(["estimate", "critic-gp", "--problem", "translation", "--n", "16", "--critic-steps", "4",
                 "--param", "n_critic=2", "--critic-data", mode]) == 0
    assert f"samples used {samples} " in " ".join(capsys.readouterr().out.split())


def test_estimate_critic_data_rejected(capsys):
    with pytest.raises(SystemExit):
        main(["estimate", "critic-gp", "--problem", "translation", "--critic-data", "new"])
    assert "invalid choice: 'new'" in capsys.readouterr().err


def test_estimate_critic_steps_default():
    from otbench.cli import _build_parser

    args = _build_parser().parse_args(["estimate", "critic-gp", "--problem", "translation"])
    assert args.critic_steps == 1000


def test_estimate_help_critic_steps(capsys):
    with pytest.raises(SystemExit):
        main(["estimate", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "(default: 1000)" in out
    assert "ceil(STEPS / n_critic)" in out


def test_estimate_clip_shows_ratio(capsys):
    code = main(["estimate", "critic-clip", "--problem", "translation", "--n", "32",
                 "--critic-steps", "4", "--param", "n_critic=2"])
    assert code == 0
    assert "ratio (scale unknown)" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["estimate", "exact", "--problem", "spiral"], "unknown problem 'spiral'"),
        (["estimate", "exact", "--problem", "translation", "--param", "foo=1"], "unknown parameter"),
        (["estimate", "critic-gp", "--problem", "translation", "--p", "2"], "W_1 only"),
        (["estimate", "exact", "--problem", "gaussians", "--p", "1"], "known only for p in [2]"),
        (["estimate", "exact", "--problem", "translation", "--param", "novalue"], "KEY=VALUE"),
        (["estimate", "nope", "--problem", "translation"], "unknown estimator 'nope'"),
        (["estimate", "sinkhorn", "--problem", "translation", "--param", "p=2"], "use --p"),
    ],
)
def test_user_errors_exit_2(args, fragment, capsys):
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("otbench: error: ")
    assert fragment in err
    assert "Traceback" not in err


def test_bad_option_exit_2(capsys):
    with pytest.raises(SystemExit) as caught:
        main(["run", str(TINY), "--workers", "0"])
    assert caught.value.code == 2
    assert "positive integer" in capsys.readouterr().err


def test_report_missing_run(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    assert "records.jsonl not found" in capsys.readouterr().err


@pytest.mark.slow
def test_run_bad_suite_subprocess(tmp_path):
    suite = tmp_path / "bad.toml"
    suite.write_text("[estimators.exact]\n[[cost]]\nn = [8, 0]\nd = 2\n")
    completed = otbench("run", str(suite), "--out", str(tmp_path / "run"))
    assert completed.returncode == 2
    assert "cost[0].n" in completed.stderr
    assert "Traceback" not in completed.stderr


def test_run_out_is_file_exit_2(tmp_path, capsys):
    out = tmp_path / "plain"
    out.write_text("")
    assert main(["run", str(TINY), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("otbench: error: ")
    assert str(out) in err
    assert err.count("\n") == 1


def test_run_out_under_file_exit_2(tmp_path, capsys):
    (tmp_path / "plain").write_text("")
    assert main(["run", str(TINY), "--out", str(tmp_path / "plain" / "run")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("otbench: error: ")
    assert f"{tmp_path / 'plain'} is not a folder" in err


def test_run_all_skipped_exit_2(tmp_path, capsys):
    suite = tmp_path / "skipped.toml"
    suite.write_text('[estimators.critic-gp]\n[[cost]]\nn = 8\nd = 2\np = 2\n')
    assert main(["run", str(suite), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "no valid cell to run" in err
    assert "supports p in [1] only" in err


def test_run_bool_value_toml_form(tmp_path, capsys):
    suite = tmp_path / "bool.toml"
    suite.write_text('[estimators.exact]\n[[cost]]\nn = true\nd = 2\n')
    assert main(["run", str(suite), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "invalid value true;" in err
    assert "True" not in err


def test_resume_other_suite_exit_2(tmp_path, capsys):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "resolved.json").write_text('{"cells": [{"cell_id": "0000000000000000"}], "skipped": []}')
    (run_dir / "records.jsonl").write_text('{"cell_id": "0000000000000000"}\n')
    assert main(["run", str(TINY), "--out", str(run_dir), "--resume"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("otbench: error: ")
    assert "does not match the run" in err
    assert sorted(path.name for path in run_dir.iterdir()) == ["records.jsonl", "resolved.json"]


def test_run_existing_records_exit_2(tmp_path, capsys):
    (tmp_path / "records.jsonl").write_text('{"cell_id": "a"}\n')
    assert main(["run", str(TINY), "--out", str(tmp_path)]) == 2
    assert "--resume" in capsys.readouterr().err


@pytest.mark.slow
def test_run_tiny_subprocess(tmp_path):
    run_dir = tmp_path / "tiny"
    completed = otbench("run", str(TINY), "--out", str(run_dir), "--no-progress")
    assert completed.returncode == 0, completed.stderr
    assert sorted(record_ids(run_dir)) == sorted(resolved_ids(run_dir))
    assert (run_dir / "report.md").is_file()
    assert f"report: {run_dir / 'report.md'}" in completed.stdout
    assert "ok" in completed.stdout


@pytest.mark.slow
def test_resume_after_kill(tmp_path):
    run_dir = tmp_path / "tiny"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(
        [sys.executable, "-m", "otbench.cli", "run", str(TINY), "--out", str(run_dir),
         "--workers", "1", "--no-progress", "--no-report"],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    records = run_dir / "records.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if records.exists() and records.read_text().count("\n") >= 2:
            break
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    first_count = len(read_records(records))  # drops a line cut short by the kill

    completed = otbench("run", str(TINY), "--out", str(run_dir), "--resume", "--no-progress", "--no-report")
    ids = record_ids(run_dir)
    assert completed.returncode == 0, completed.stderr
    assert first_count >= 2
    assert first_count < len(resolved_ids(run_dir))
    assert f"{first_count} of" in completed.stdout
    assert len(ids) == len(set(ids))
    assert sorted(ids) == sorted(resolved_ids(run_dir))


# A training run of a few seconds: 5 generator steps, evaluated at steps 0 and 5.
FAST_TRAIN = ["--data", "8gaussians", "--steps", "5", "--batch-size", "32", "--eval-every", "5", "--n-eval", "64"]
TRAIN_FILES = ["config.json", "evaluations.csv", "history.csv", "samples.png"]


def test_train_writes_results(tmp_path, capsys):
    out = tmp_path / "train"
    assert main(["train", "sinkhorn", *FAST_TRAIN, "--out", str(out)]) == 0
    history = (out / "history.csv").read_text().splitlines()
    evaluations = (out / "evaluations.csv").read_text().splitlines()
    assert sorted(path.name for path in out.iterdir()) == TRAIN_FILES
    assert history[0] == "step,loss,inner_seconds,step_seconds,elapsed_seconds"
    assert [line.split(",")[0] for line in history[1:]] == ["1", "2", "3", "4", "5"]
    assert evaluations[0].startswith("step,elapsed_seconds,w2_heldout")
    assert [line.split(",")[0] for line in evaluations[1:]] == ["0", "5"]
    assert (out / "samples.png").read_bytes().startswith(b"\x89PNG")
    assert f"results: {out}" in capsys.readouterr().out


def test_train_config_options(tmp_path):
    out = tmp_path / "train"
    code = main(["train", "sinkhorn", *FAST_TRAIN, "--p", "2", "--lr", "0.002", "--seed", "3",
                 "--param", "blur=0.1", "--no-progress", "--out", str(out)])
    config = json.loads((out / "config.json").read_text())
    assert code == 0
    assert config["estimator"] == "sinkhorn"
    assert config["data"] == "8gaussians"
    assert config["p"] == 2
    assert config["steps"] == 5
    assert config["batch_size"] == 32
    assert config["lr"] == 0.002
    assert config["eval_every"] == 5
    assert config["n_eval"] == 64
    assert config["seed"] == 3
    assert config["params"] == {"blur": 0.1}
    assert config["estimator_params"]["blur"] == 0.1
    assert config["estimator_params"]["p"] == 2
    assert config["environment"]["packages"]["torch"] is not None
    assert config["environment"]["command"][:3] == ["otbench", "train", "sinkhorn"]


def test_train_prints_progress_table(capsys):
    assert main(["train", "exact", *FAST_TRAIN, "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "eval at step 0/5 (0 training seconds): w2_heldout=" in out
    assert "eval at step 5/5 (" in out
    assert "inner-loop seconds (total)" in out
    assert "training seconds (total, evaluation excluded)" in out
    assert "results:" not in out


def test_train_empty_out_accepted(tmp_path):
    out = tmp_path / "empty"
    out.mkdir()
    assert main(["train", "exact", *FAST_TRAIN, "--no-progress", "--out", str(out)]) == 0
    assert sorted(path.name for path in out.iterdir()) == TRAIN_FILES
    assert sorted(path.name for path in tmp_path.iterdir()) == ["empty"]


def test_train_nonempty_out_exit_2(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("keep")
    assert main(["train", "exact", *FAST_TRAIN, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"otbench: error: --out {tmp_path} is not empty")
    assert err.count("\n") == 1
    assert sorted(path.name for path in tmp_path.iterdir()) == ["notes.txt"]
    assert (tmp_path / "notes.txt").read_text() == "keep"


def test_train_out_under_file_exit_2(tmp_path, capsys):
    (tmp_path / "plain").write_text("")
    assert main(["train", "exact", *FAST_TRAIN, "--out", str(tmp_path / "plain" / "run")]) == 2
    assert f"{tmp_path / 'plain'} is not a folder" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["train", "nope", "--data", "8gaussians"], "unknown estimator 'nope'"),
        (["train", "exact", "--data", "moons"], "unknown data set 'moons'"),
        (["train", "critic-gp", "--data", "8gaussians", "--p", "2"], "p=2 is not supported by estimator 'critic-gp'"),
        (["train", "sinkhorn", "--data", "8gaussians", "--p", "3"], "p=3 is not supported"),
        (["train", "sinkhorn", "--data", "8gaussians", "--param", "p=2"], "use --p"),
        (["train", "sinkhorn", "--data", "8gaussians", "--param", "foo=1"], "unknown parameter(s) ['foo']"),
        (["train", "sinkhorn", "--data", "8gaussians", "--param", "blur"], "--param 'blur' is invalid"),
        (["train", "sinkhorn", "--data", "8gaussians", "--param", "blur=-1"], "blur"),
    ],
)
def test_train_user_errors_exit_2(args, fragment, tmp_path, capsys):
    out = tmp_path / "train"
    assert main([*args, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("otbench: error: ")
    assert fragment in err
    assert "Traceback" not in err
    assert not out.exists()


def test_train_diverged_exit_1(tmp_path, capsys):
    out = tmp_path / "train"
    assert main(["train", "exact", *FAST_TRAIN, "--lr", "1e30", "--no-progress", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("otbench: error: training failed after ")
    assert "NaN" in err
    assert not out.exists()


@pytest.mark.parametrize(
    ("option", "value"),
    [("--steps", "0"), ("--batch-size", "-2"), ("--eval-every", "x"), ("--n-eval", "0"),
     ("--lr", "-1"), ("--lr", "nan"), ("--lr", "fast"), ("--seed", "-1")],
)
def test_train_bad_option_exit_2(option, value, capsys):
    with pytest.raises(SystemExit) as caught:
        main(["train", "exact", "--data", "8gaussians", option, value])
    err = capsys.readouterr().err
    assert caught.value.code == 2
    assert f"argument {option}: invalid value {value!r}" in err


def test_train_defaults_from_trainer():
    import inspect

    from otbench.cli import _build_parser
    from otbench.train import Trainer

    args = _build_parser().parse_args(["train", "exact", "--data", "8gaussians"])
    defaults = inspect.signature(Trainer).parameters
    for name in ("steps", "batch_size", "lr", "eval_every", "n_eval", "seed"):
        assert getattr(args, name) == defaults[name].default, name


def test_train_help_units(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "number of generator steps, each one Adam update of the generator (default: 500)" in out
    assert "Adam learning rate of the generator" in out
    assert "samples per side at each generator step" in out
    assert "every N generator steps" in out


@pytest.mark.slow
def test_train_digits_samples(tmp_path):
    out = tmp_path / "digits"
    code = main(["train", "sinkhorn", "--data", "digits", "--steps", "2", "--batch-size", "32",
                 "--eval-every", "2", "--n-eval", "64", "--no-progress", "--out", str(out)])
    evaluations = (out / "evaluations.csv").read_text().splitlines()
    assert code == 0
    assert sorted(path.name for path in out.iterdir()) == TRAIN_FILES
    assert "frechet_distance" in evaluations[0]
    assert (out / "samples.png").stat().st_size > 1000


@pytest.mark.slow
def test_train_interrupt_writes_nothing(tmp_path):
    out = tmp_path / "train"
    stdout = tmp_path / "stdout.txt"
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
    with stdout.open("w") as handle:
        process = subprocess.Popen(
            [sys.executable, "-m", "otbench.cli", "train", "exact", "--data", "8gaussians",
             "--steps", "1000000", "--batch-size", "32", "--eval-every", "1000000", "--n-eval", "64",
             "--no-progress", "--out", str(out)],
            cwd=REPO, env=env, stdout=handle, stderr=subprocess.PIPE, text=True,
            # A shell may start background jobs with SIGINT ignored; restore the default.
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and "eval at step 0/" not in stdout.read_text():
            time.sleep(0.05)
        time.sleep(0.5)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
    assert process.returncode == 130
    assert "otbench: interrupted at generator step" in err
    assert "no results were written" in err
    assert "Traceback" not in err
    assert sorted(path.name for path in tmp_path.iterdir()) == ["stdout.txt"]
