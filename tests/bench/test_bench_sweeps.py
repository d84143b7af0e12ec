"""Budget sweeps: estimator sweeps and critic steps expand into cells with their budget."""

from __future__ import annotations

import textwrap

import pytest

from otbench.bench import SuiteError, parse_suite, resolve_suite, run_cell

SWEEP_SUITE = """
seeds = [0, 1]
[estimators.exact]
[estimators.sinkhorn]
sweep = { blur = [0.5, 0.1], scaling = [0.5, 0.9] }
[estimators.critic-gp]
sweep = { n_critic = [1, 5] }
[[accuracy]]
problem = "translation"
params = { d = 2 }
n = [16, 32]
p = 1
critic_steps = [10, 20, 40]
"""


def resolve(text: str = SWEEP_SUITE):
    return resolve_suite(parse_suite(textwrap.dedent(text), source="sweep.toml"))


def cells_of(label: str) -> list[dict]:
    return [cell for cell in resolve().cells if cell["estimator"] == label]


def test_sweep_expands_every_combination():
    # 2 blurs x 2 scalings x 2 n x 2 seeds
    assert len(cells_of("sinkhorn")) == 16


def test_sweep_values_in_params_and_budget():
    cell = cells_of("sinkhorn")[0]
    assert cell["estimator_params"] == {"p": 1, "blur": 0.5, "scaling": 0.5}
    assert cell["budget"] == {"blur": 0.5, "scaling": 0.5}


def test_critic_steps_expand_for_critics():
    # 2 n_critic x 3 critic_steps x 2 n x 2 seeds
    assert len(cells_of("critic-gp")) == 24


def test_critic_steps_in_budget():
    budgets = {tuple(sorted(c["budget"].items())) for c in cells_of("critic-gp")}
    assert (("critic_steps", 40), ("n_critic", 5)) in budgets


def test_critic_steps_ignored_by_plug_in():
    # exact is called once whatever critic_steps is: 2 n x 2 seeds
    assert len(cells_of("exact")) == 4


def test_plug_in_settings_empty():
    assert cells_of("exact")[0]["settings"] == {}


def test_critic_settings_carry_data_mode():
    assert cells_of("critic-gp")[0]["settings"] == {"critic_steps": 10, "critic_data": "fresh"}


def test_sweep_ids_distinct():
    ids = [cell["cell_id"] for cell in resolve().cells]
    assert len(set(ids)) == len(ids)


@pytest.mark.parametrize(
    "table, key, expected",
    [
        ("sweep = 3", "estimators.s.sweep", "table of parameter lists"),
        ("sweep = {}", "estimators.s.sweep", "table of parameter lists"),
        ("sweep = { blur = [] }", "estimators.s.sweep.blur", "non-empty list"),
        ("sweep = { blur = 0.1 }", "estimators.s.sweep.blur", "non-empty list"),
        ("sweep = { blur = [0.1, 0.1] }", "estimators.s.sweep.blur", "each value once"),
        ("sweep = { p = [1, 2] }", "estimators.s.sweep.p", "task blocks"),
    ],
)
def test_invalid_sweep_rejected(table: str, key: str, expected: str):
    text = f"[estimators.s]\nname = \"sinkhorn\"\n{table}\n[[accuracy]]\nproblem = \"translation\"\nn = 8\n"
    with pytest.raises(SuiteError, match=expected) as caught:
        parse_suite(text, source="bad.toml")
    assert caught.value.key == key


def test_sweep_value_rejected_by_estimator():
    text = "[estimators.s]\nname = \"sinkhorn\"\nsweep = { blur = [0.1, -1.0] }\n[[accuracy]]\nproblem = \"translation\"\nn = 8\n"
    with pytest.raises(SuiteError, match="blur"):
        resolve(text)


@pytest.mark.parametrize("value", ['"new"', "1", "true"])
def test_invalid_critic_data(value: str):
    text = f"[estimators.exact]\n[[accuracy]]\nproblem = \"translation\"\nn = 8\ncritic_data = {value}\n"
    with pytest.raises(SuiteError, match='"fresh" or "fixed"'):
        parse_suite(text, source="bad.toml")


def accuracy_cell(estimator: str, problem: str, problem_params: dict, p: int = 1, **overrides) -> dict:
    cell = {
        "cell_id": "0123456789abcdef",
        "task": "accuracy",
        "estimator": estimator,
        "estimator_name": estimator,
        "estimator_params": {"p": p},
        "problem": problem,
        "problem_params": problem_params,
        "data": None,
        "n": 64,
        "d": problem_params.get("d", 2),
        "p": p,
        "seed": 0,
        "settings": {},
        "budget": {},
        "time_limit": 60.0,
    }
    cell.update(overrides)
    return cell


def test_fresh_critic_counts_samples():
    cell = accuracy_cell(
        "critic-gp", "translation", {"d": 2}, estimator_params={"p": 1, "n_critic": 2},
        settings={"critic_steps": 6, "critic_data": "fresh"},
    )
    result = run_cell(cell)["result"]
    assert result["samples_used"] == 3 * 2 * 64  # three calls, a new pair of 64 + 64 each


def test_fixed_critic_counts_one_pair():
    cell = accuracy_cell(
        "critic-gp", "translation", {"d": 2}, estimator_params={"p": 1, "n_critic": 2},
        settings={"critic_steps": 6, "critic_data": "fixed"},
    )
    assert run_cell(cell)["result"]["samples_used"] == 2 * 64


def test_fresh_and_fixed_differ():
    settings = {"critic_steps": 6}
    values = []
    for mode in ("fresh", "fixed"):
        cell = accuracy_cell(
            "critic-gp", "translation", {"d": 2}, estimator_params={"p": 1, "n_critic": 2},
            settings={**settings, "critic_data": mode},
        )
        values.append(run_cell(cell)["result"]["estimate"])
    assert values[0] != values[1]


@pytest.mark.parametrize("p", [1, 2])
def test_paired_translation_exact_gradient_matches(p: int):
    # On y = x + t the optimal plan is the pairing, so -dW/dx_i = t / (n ||t||) exactly.
    cell = accuracy_cell("exact", "translation", {"d": 3, "paired": True}, p=p, estimator_params={"p": p})
    result = run_cell(cell)["result"]
    assert result["cosine"] == pytest.approx(1.0, abs=1e-9)
    assert result["gradient_error"] == pytest.approx(0.0, abs=1e-12)


def test_clip_critic_gradient_error_null():
    cell = accuracy_cell(
        "critic-clip", "translation", {"d": 2}, estimator_params={"p": 1, "n_critic": 2},
        settings={"critic_steps": 4, "critic_data": "fresh"},
    )
    result = run_cell(cell)["result"]
    assert result["gradient_error"] is None
    assert -1.0 <= result["cosine"] <= 1.0


def test_problem_without_map_has_no_cosine():
    cell = accuracy_cell("exact", "one-d", {}, d=1)
    result = run_cell(cell)["result"]
    assert result["cosine"] is None


def test_truth_stderr_recorded():
    result = run_cell(accuracy_cell("exact", "translation", {"d": 2}))["result"]
    assert result["truth_stderr"] == 0.0


def test_bias_signed():
    result = run_cell(accuracy_cell("exact", "translation", {"d": 2}))["result"]
    assert result["bias"] == pytest.approx(result["estimate"] - result["truth"])


def test_block_without_sweep_runs_base_params():
    text = SWEEP_SUITE.replace('critic_steps = [10, 20, 40]', 'critic_steps = [10, 20, 40]\nsweep = false')
    cells = [c for c in resolve(text).cells if c["estimator"] == "sinkhorn"]
    assert {(c["budget"] == {}, c["estimator_params"] == {"p": 1}) for c in cells} == {(True, True)}


def test_block_sweep_flag_type_checked():
    text = "[estimators.exact]\n[[accuracy]]\nproblem = \"translation\"\nn = 8\nsweep = 1\n"
    with pytest.raises(SuiteError, match="true or false"):
        parse_suite(text, source="bad.toml")


def test_sweep_overrides_table_value():
    text = SWEEP_SUITE.replace('sweep = { blur = [0.5, 0.1], scaling = [0.5, 0.9] }', 'blur = 0.3\nsweep = { blur = [0.5, 0.1] }')
    blurs = {c["estimator_params"]["blur"] for c in resolve(text).cells if c["estimator"] == "sinkhorn"}
    assert blurs == {0.5, 0.1}


def test_table_value_without_sweep():
    text = SWEEP_SUITE.replace('sweep = { blur = [0.5, 0.1], scaling = [0.5, 0.9] }', 'blur = 0.3\nsweep = { blur = [0.5, 0.1] }')
    text = text.replace('critic_steps = [10, 20, 40]', 'critic_steps = [10, 20, 40]\nsweep = false')
    blurs = {c["estimator_params"]["blur"] for c in resolve(text).cells if c["estimator"] == "sinkhorn"}
    assert blurs == {0.3}
