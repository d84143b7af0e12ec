"""Cell expansion: counts, ids and skipped combinations."""

from __future__ import annotations

import hashlib
import textwrap

from otbench.bench import cell_id, parse_suite, resolve_suite

SUITE = """
seeds = [0, 1]
[estimators.exact]
[estimators.critic-gp]
n_critic = 2
[[accuracy]]
problem = "translation"
params = { d = [2, 3] }
n = [16, 32]
p = [1, 2]
[[accuracy]]
problem = "gaussians"
params = { d = 2 }
n = 16
p = [1, 2]
estimators = ["exact"]
[[cost]]
n = [8, 16]
d = 2
p = [1, 2]
repeats = 2
[[training]]
data = "8gaussians"
steps = 2
batch_size = 8
"""


def resolve(text: str = SUITE):
    return resolve_suite(parse_suite(textwrap.dedent(text), source="cells.toml"))


def test_cell_counts_per_task():
    cells = resolve().cells
    accuracy = [c for c in cells if c["task"] == "accuracy"]
    # translation: exact 2 d x 2 n x 2 p x 2 seeds + critic-gp 2 d x 2 n x 1 p x 2 seeds;
    # gaussians: exact at p=2 only, 2 seeds.
    assert len(accuracy) == 16 + 8 + 2
    assert len([c for c in cells if c["task"] == "cost"]) == 2 * 2 * 2 + 2 * 2
    assert len([c for c in cells if c["task"] == "training"]) == 2 * 2


def test_cell_fields_accuracy():
    cell = resolve().cells[0]
    assert cell["estimator"] == "exact"
    assert cell["estimator_params"] == {"p": cell["p"]}
    assert cell["problem_params"]["d"] == cell["d"]
    assert cell["settings"] == {}
    assert cell["budget"] == {}
    assert cell["data"] is None


def test_cell_fields_training():
    cell = next(c for c in resolve().cells if c["task"] == "training")
    assert cell["n"] == 8
    assert cell["d"] == 2
    assert cell["settings"] == {"steps": 2, "batch_size": 8}


def test_cell_ids_stable_across_resolves():
    first = [c["cell_id"] for c in resolve().cells]
    second = [c["cell_id"] for c in resolve().cells]
    assert first == second


def test_cell_ids_unique():
    ids = [c["cell_id"] for c in resolve().cells]
    assert len(set(ids)) == len(ids)


def test_cell_id_known_value():
    # The id hashes canonical JSON (sorted keys, no spaces); changing that breaks resumed runs.
    config = {"task": "cost", "n": 8, "seed": 0}
    expected = hashlib.sha256(b'{"n":8,"seed":0,"task":"cost"}').hexdigest()[:16]
    assert expected == "3896ef42a5c9bf74"
    assert cell_id(config) == expected


def test_cell_id_format():
    identifier = cell_id({"task": "cost"})
    assert len(identifier) == 16
    assert int(identifier, 16) >= 0


def test_cell_id_ignores_time_limit():
    config = {"task": "cost", "n": 8, "seed": 0}
    assert cell_id({**config, "time_limit": 1.0}) == cell_id({**config, "time_limit": 99.0})


def test_cell_id_changes_with_config():
    config = {"task": "cost", "n": 8, "seed": 0, "estimator_params": {"p": 1}}
    assert cell_id(config) != cell_id({**config, "seed": 1})
    assert cell_id(config) != cell_id({**config, "n": 9})
    assert cell_id(config) != cell_id({**config, "estimator_params": {"p": 1, "blur": 0.1}})


def test_skipped_critic_order():
    skipped = resolve().skipped
    critic = [s for s in skipped if s["estimator"] == "critic-gp" and s["task"] == "accuracy"]
    assert len(critic) == 2  # p = 2 for d = 2 and d = 3
    assert all(s["p"] == 2 for s in critic)
    assert all("supports p in [1] only" in s["reason"] for s in critic)


def test_skipped_problem_order():
    skipped = resolve().skipped
    gaussians = [s for s in skipped if s.get("problem") == "gaussians"]
    assert len(gaussians) == 1
    assert gaussians[0]["p"] == 1
    assert "knows the true W_p only for p in [2]" in gaussians[0]["reason"]


def test_skipped_cost_and_training():
    skipped = resolve().skipped
    assert any(s["task"] == "cost" and s["estimator"] == "critic-gp" for s in skipped)
    assert all(s["block"] for s in skipped)


def test_duplicate_blocks_give_one_cell():
    text = SUITE + "[[cost]]\nn = [8, 16]\nd = 2\np = [1, 2]\nrepeats = 2\n"
    assert len(resolve(text).cells) == len(resolve().cells)


def test_resolution_json_keys():
    assert set(resolve().to_json()) == {"cells", "skipped"}
