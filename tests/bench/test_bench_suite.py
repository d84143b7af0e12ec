"""Suite files: parsing, defaults and every rejected key, type and value."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from otbench.bench import SuiteError, load_suite, parse_suite, resolve_suite

REPO = Path(__file__).resolve().parents[2]

BASE = """
name = "t"
seeds = [0, 1]
time_limit = 30
[estimators.exact]
[estimators.sinkhorn]
blur = 0.1
[[accuracy]]
problem = "translation"
params = { d = [2, 3] }
n = [16, 32]
p = [1, 2]
"""


def parse(text: str):
    return parse_suite(textwrap.dedent(text), source="t.toml")


def resolve(text: str):
    return resolve_suite(parse(text))


def test_parse_base_suite():
    suite = parse(BASE)
    assert suite.name == "t"
    assert suite.seeds == (0, 1)
    assert suite.time_limit == 30.0
    assert list(suite.estimators) == ["exact", "sinkhorn"]
    assert suite.estimators["sinkhorn"].params == {"blur": 0.1}
    assert suite.estimators["exact"].name == "exact"


def test_parse_block_defaults():
    task, index, settings = parse(BASE).blocks[0]
    assert (task, index) == ("accuracy", 0)
    assert settings["estimators"] == ["exact", "sinkhorn"]
    assert settings["seeds"] == (0, 1)
    assert settings["critic_steps"] == [1000]
    assert settings["critic_data"] == "fresh"
    assert settings["time_limit"] == 30.0


def test_parse_name_defaults_to_stem(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text(BASE.replace('name = "t"\n', ""))
    assert load_suite(path).name == "mine"


def test_label_with_other_name():
    suite = parse(BASE + '[estimators.fine]\nname = "sinkhorn"\nblur = 0.01\n')
    assert suite.estimators["fine"].name == "sinkhorn"
    assert suite.estimators["fine"].params == {"blur": 0.01}


@pytest.mark.parametrize(
    ("text", "key", "fragment"),
    [
        ("colour = 1\n" + BASE, "colour", "unknown key"),
        (BASE + "colour = 1\n", "accuracy[0].colour", "unknown key"),
        (BASE.replace("n = [16, 32]", "n = [16, 32]\nnn = 3"), "accuracy[0].nn", "allowed keys"),
        (BASE.replace("n = [16, 32]", 'n = "big"'), "accuracy[0].n", '"big"'),
        (BASE.replace("n = [16, 32]", "n = [16, -2]"), "accuracy[0].n", "positive integer"),
        (BASE.replace("n = [16, 32]", ""), "accuracy[0].n", "missing"),
        (BASE.replace("p = [1, 2]", "p = 3"), "accuracy[0].p", "one of [1, 2]"),
        (BASE.replace("seeds = [0, 1]", "seeds = 3"), "seeds", "non-negative integers"),
        (BASE.replace("seeds = [0, 1]", "seeds = [-1]"), "seeds", "[-1]"),
        (BASE.replace("seeds = [0, 1]", "seeds = [0, 0]"), "seeds", "distinct"),
        (BASE.replace("seeds = [0, 1]", "seeds = []"), "seeds", "non-empty"),
        (BASE.replace("time_limit = 30", "time_limit = 0"), "time_limit", "positive number"),
        (BASE.replace("time_limit = 30", 'time_limit = "1h"'), "time_limit", '"1h"'),
        (BASE.replace("blur = 0.1", "blur = 0.1\np = 2"), "estimators.sinkhorn.p", "each task block"),
        (BASE + 'estimators = ["gone"]\n', "accuracy[0].estimators", '"gone"'),
        (BASE + "critic_steps = 0\n", "accuracy[0].critic_steps", "positive integer"),
        (BASE + "[[cost]]\nn = 8\n", "cost[0].d", "missing"),
        (BASE + '[[cost]]\nn = 8\nd = 2\ndevice = "tpu"\n', "cost[0].device", '"tpu"'),
        (BASE + "[[training]]\ndata = 3\nsteps = 2\nbatch_size = 4\n", "training[0].data", "data set name"),
        (BASE + '[[training]]\ndata = "swissroll"\nbatch_size = 4\n', "training[0].steps", "missing"),
        (
            BASE + '[[training]]\ndata = "swissroll"\nsteps = 2\nbatch_size = 4\nbetas = [0.5]\n',
            "training[0].betas",
            "two numbers",
        ),
    ],
)
def test_parse_rejects_invalid(text, key, fragment):
    with pytest.raises(SuiteError) as caught:
        parse(text)
    message = str(caught.value)
    assert message.startswith(f"t.toml: {key}:")
    assert fragment in message


@pytest.mark.parametrize(
    ("toml_value", "written"),
    [("true", "true"), ('"abc"', '"abc"'), ("[1, false]", "[1, false]"), ("{ a = 1 }", '{"a": 1}')],
)
def test_error_writes_toml_values(toml_value, written):
    with pytest.raises(SuiteError) as caught:
        parse(BASE.replace("n = [16, 32]", f"n = {toml_value}"))
    message = str(caught.value)
    assert f"invalid value {written};" in message
    assert "True" not in message
    assert "False" not in message


def test_estimator_p_error_explains():
    with pytest.raises(SuiteError) as caught:
        parse(BASE.replace("blur = 0.1", "blur = 0.1\np = [1, 2]"))
    message = str(caught.value)
    assert "p = [1, 2] is not an estimator setting" in message
    assert "set p in the task blocks" in message


def test_suite_error_is_value_error():
    assert issubclass(SuiteError, ValueError)


def test_parse_rejects_invalid_toml():
    with pytest.raises(SuiteError, match="t.toml: invalid TOML"):
        parse("name = \n")


def test_parse_rejects_no_blocks():
    with pytest.raises(SuiteError, match="no task blocks"):
        parse("[estimators.exact]\n")


def test_parse_rejects_no_estimators():
    with pytest.raises(SuiteError, match="t.toml: estimators: missing"):
        parse('[[cost]]\nn = 8\nd = 2\n')


def test_load_missing_file(tmp_path):
    with pytest.raises(SuiteError, match="not found"):
        load_suite(tmp_path / "absent.toml")


def test_resolve_unknown_estimator_lists_available():
    with pytest.raises(SuiteError) as caught:
        resolve(BASE + "[estimators.mystery]\n")
    message = str(caught.value)
    assert "t.toml: estimators.mystery:" in message
    assert "critic-gp" in message
    assert "sinkhorn" in message


def test_resolve_unknown_estimator_name_key():
    with pytest.raises(SuiteError, match=r'estimators\.fast\.name: unknown estimator "quick"'):
        resolve(BASE + '[estimators.fast]\nname = "quick"\n')


def test_resolve_bad_estimator_param():
    with pytest.raises(SuiteError) as caught:
        resolve(BASE.replace("blur = 0.1", "blur = -1.0"))
    message = str(caught.value)
    assert "estimators.sinkhorn" in message
    assert "-1.0" in message


def test_resolve_unknown_estimator_param():
    with pytest.raises(SuiteError, match="unknown parameter"):
        resolve(BASE.replace("blur = 0.1", "blurr = 0.1"))


def test_resolve_unknown_problem_lists_available():
    with pytest.raises(SuiteError) as caught:
        resolve(BASE.replace('"translation"', '"spiral"'))
    message = str(caught.value)
    assert 'accuracy[0].problem: unknown problem "spiral"' in message
    assert "translation" in message


def test_resolve_bad_problem_param():
    with pytest.raises(SuiteError, match=r"accuracy\[0\]\.params"):
        resolve(BASE.replace("d = [2, 3]", "d = [2, 0]"))


def test_resolve_unknown_data_lists_available():
    text = BASE + '[[training]]\ndata = "cifar"\nsteps = 2\nbatch_size = 4\n'
    with pytest.raises(SuiteError) as caught:
        resolve(text)
    message = str(caught.value)
    assert 'training[0].data: unknown data set "cifar"' in message
    assert "8gaussians" in message


@pytest.mark.parametrize("name", ["tiny.toml", "quick.toml"])
def test_shipped_suites_resolve(name):
    resolution = resolve_suite(load_suite(REPO / "benchmarks" / name))
    assert resolution.cells
    assert {cell["task"] for cell in resolution.cells} == {"accuracy", "cost", "training"}
