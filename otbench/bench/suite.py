"""Suite files: a TOML description of which benchmark cells to run.

A suite names estimator configurations once and lists task blocks that use
them. Every key is checked here, before anything runs::

    name = "quick"               # run folder name; defaults to the file name
    seeds = [0, 1, 2]            # non-negative integers
    time_limit = 300             # seconds per cell

    [estimators.sinkhorn]        # a label; `name` defaults to the label
    blur = 0.05                  # every other key is an estimator parameter
    sweep = { blur = [0.5, 0.05] }  # optional: budgets, one configuration each

    [[accuracy]]
    problem = "translation"
    params = { d = [2, 16] }     # list values expand as a grid
    n = [128, 512]               # samples per side
    p = [1, 2]
    critic_steps = [200, 1000]   # critic steps before reading a critic's estimate
    critic_data = "fresh"        # a new pair for every critic call, or "fixed"

    [[cost]]
    n = [256, 1024]
    d = [2]
    repeats = 5

    [[training]]
    data = ["8gaussians"]
    steps = 300
    batch_size = 256

Each block may also set ``estimators`` (a list of labels, default all),
``seeds``, ``time_limit`` and ``sweep = false`` (run each label once, with
its table's parameters and without its sweep). A problem parameter whose value is itself a
list is written as a list of one list, for example ``shift = [[1.0, 0.0]]``.

Registry names (estimators, problems, data sets) and estimator parameters are
checked when the suite is resolved into cells, in :mod:`otbench.bench.cells`.
``docs/suites.md`` documents every key for users.
"""

from __future__ import annotations

import itertools
import json
import math
import re
try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the same parser, published as tomli
    import tomli as tomllib  # type: ignore[no-redef]
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

__all__ = [
    "EstimatorConfig",
    "Suite",
    "SuiteError",
    "TASKS",
    "format_value",
    "load_suite",
    "parse_suite",
]

TASKS = ("accuracy", "cost", "training")

DEFAULT_TIME_LIMIT = 300.0
# 300 steps at the critics' default learning rates often leave W_1 estimates below zero.
DEFAULT_CRITIC_STEPS = 1000
DEFAULT_REPEATS = 5

_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")

CRITIC_DATA = ("fresh", "fixed")

_TOP_KEYS = ("name", "description", "seeds", "time_limit", "estimators", *TASKS)
_COMMON_BLOCK_KEYS = ("estimators", "seeds", "time_limit", "p", "sweep")
_BLOCK_KEYS = {
    "accuracy": (*_COMMON_BLOCK_KEYS, "problem", "params", "n", "critic_steps", "critic_data"),
    "cost": (*_COMMON_BLOCK_KEYS, "n", "d", "repeats", "device"),
    "training": (
        *_COMMON_BLOCK_KEYS,
        "data",
        "steps",
        "batch_size",
        "eval_every",
        "lr",
        "betas",
        "n_eval",
        "n_snapshot",
        "latent_dim",
    ),
}
# Optional trainer settings passed to otbench.train.Trainer only when the suite sets them.
_TRAINER_INTEGERS = ("eval_every", "n_eval", "n_snapshot", "latent_dim")


def format_value(value: object) -> str:
    """Write a suite value for an error message as TOML writes it: ``true``, ``"abc"``, ``[1, 2]``.

    JSON and TOML agree on strings, numbers, booleans and arrays. A table is
    written as a JSON object and a TOML date as a quoted string.
    """
    return json.dumps(value, ensure_ascii=False, default=str)


class SuiteError(ValueError):
    """An invalid suite file: the message names the file, the key path, the value and what is allowed."""

    def __init__(self, source: str, key: str, message: str) -> None:
        self.source = source
        self.key = key
        super().__init__(f"{source}: {key}: {message}" if key else f"{source}: {message}")


@dataclass(frozen=True)
class EstimatorConfig:
    """One labelled estimator configuration of a suite.

    Attributes:
        label: the table name under ``[estimators]``, used in records and reports.
        name: the registered estimator name passed to ``otbench.estimator``.
        params: the estimator parameters other than ``p``.
        sweep: parameters that take several values, each a non-empty list.
            Every combination is one configuration of the label, and the
            report draws them as one estimator's accuracy-cost trade-off.
            A swept value overrides the same key of ``params``, which stays
            the configuration of blocks that set ``sweep = false``.
    """

    label: str
    name: str
    params: dict[str, Any]
    sweep: dict[str, list[Any]] = field(default_factory=dict)

    def variants(self) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        """Return ``(params, budget)`` per combination of the sweep, keys in sorted order.

        ``params`` is the full keyword set for ``otbench.estimator`` and
        ``budget`` the swept values alone; without a sweep, one pair with an
        empty budget.
        """
        keys = sorted(self.sweep)
        combinations = itertools.product(*(self.sweep[key] for key in keys))
        variants = []
        for values in combinations:
            budget = dict(zip(keys, values))
            variants.append(({**self.params, **budget}, budget))
        return variants


@dataclass(frozen=True)
class Suite:
    """A parsed and type-checked suite file.

    Attributes:
        name: the suite name, also the default run folder name.
        source: the file path or label used in error messages.
        text: the suite file's text, copied into the run folder.
        seeds: default seeds of every block.
        time_limit: default seconds per cell.
        estimators: configurations by label, in file order.
        blocks: ``(task, index, settings)`` for each task block, with the
            block's keys checked and defaults filled in.
        description: free text from the file, or an empty string.
    """

    name: str
    source: str
    text: str
    seeds: tuple[int, ...]
    time_limit: float
    estimators: dict[str, EstimatorConfig]
    blocks: tuple[tuple[str, int, dict[str, Any]], ...] = field(default_factory=tuple)
    description: str = ""


def load_suite(path: str | Path) -> Suite:
    """Read and check the suite file at ``path``.

    Raises:
        SuiteError: the file is missing, is not valid TOML, or has an unknown
            key, a wrong type or an invalid value.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SuiteError(str(path), "", "suite file not found") from None
    except (OSError, UnicodeDecodeError) as error:
        raise SuiteError(str(path), "", f"cannot read the suite file: {error}") from None
    return parse_suite(text, source=str(path), default_name=path.stem)


def parse_suite(text: str, source: str = "<suite>", default_name: str = "suite") -> Suite:
    """Parse and check suite TOML ``text``.

    Args:
        text: the TOML document.
        source: the file name to put in error messages.
        default_name: the suite name when the document sets none.

    Raises:
        SuiteError: invalid TOML, an unknown key, a wrong type or an invalid value.
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise SuiteError(source, "", f"invalid TOML: {error}") from None
    checker = _Checker(source)
    checker.unknown_keys(data, "", _TOP_KEYS)

    name = data.get("name", default_name)
    if not isinstance(name, str) or not _NAME_PATTERN.match(name):
        checker.fail("name", name, "a name of letters, digits, '_', '.' or '-'")
    description = data.get("description", "")
    if not isinstance(description, str):
        checker.fail("description", description, "a string")
    seeds = checker.seeds(data.get("seeds", [0]), "seeds")
    time_limit = checker.positive_number(data.get("time_limit", DEFAULT_TIME_LIMIT), "time_limit")
    estimators = _parse_estimators(checker, data.get("estimators"))

    blocks: list[tuple[str, int, dict[str, Any]]] = []
    for task in TASKS:
        raw_blocks = data.get(task, [])
        if not isinstance(raw_blocks, list) or not all(isinstance(b, dict) for b in raw_blocks):
            checker.fail(task, raw_blocks, f"an array of tables written [[{task}]]")
        for index, raw in enumerate(raw_blocks):
            where = f"{task}[{index}]"
            checker.unknown_keys(raw, where, _BLOCK_KEYS[task])
            settings = _parse_common(checker, raw, where, estimators, seeds, time_limit)
            settings.update(_TASK_PARSERS[task](checker, raw, where))
            blocks.append((task, index, settings))
    if not blocks:
        raise SuiteError(source, "", "no task blocks; add at least one [[accuracy]], [[cost]] or [[training]]")
    return Suite(
        name=name,
        source=source,
        text=text,
        seeds=seeds,
        time_limit=time_limit,
        estimators=estimators,
        blocks=tuple(blocks),
        description=description,
    )


def _parse_estimators(checker: _Checker, raw: object) -> dict[str, EstimatorConfig]:
    if raw is None:
        raise SuiteError(checker.source, "estimators", "missing; define at least one [estimators.LABEL] table")
    if not isinstance(raw, dict) or not raw:
        checker.fail("estimators", raw, "a table of [estimators.LABEL] tables")
    configs: dict[str, EstimatorConfig] = {}
    for label, table in raw.items():
        where = f"estimators.{label}"
        if not _NAME_PATTERN.match(label):
            checker.fail(where, label, "a label of letters, digits, '_', '.' or '-'")
        if not isinstance(table, dict):
            checker.fail(where, table, "a table of estimator parameters")
        params = dict(table)
        name = params.pop("name", label)
        if not isinstance(name, str):
            checker.fail(f"{where}.name", name, "a registered estimator name")
        sweep = params.pop("sweep", None)
        if sweep is None:
            sweep = {}
        elif not isinstance(sweep, dict) or not sweep:
            checker.fail(f"{where}.sweep", sweep, "a table of parameter lists, such as { blur = [0.5, 0.05] }")
        for key, values in sweep.items():
            if not isinstance(values, list) or not values:
                checker.fail(f"{where}.sweep.{key}", values, "a non-empty list of values")
            if len({format_value(v) for v in values}) != len(values):
                checker.fail(f"{where}.sweep.{key}", values, "each value once")
        for table, prefix in ((params, where), (sweep, f"{where}.sweep")):
            if "p" in table:
                raise SuiteError(
                    checker.source,
                    f"{prefix}.p",
                    f"p = {format_value(table['p'])} is not an estimator setting here, because each task "
                    f"block sets the orders p it runs; set p in the task blocks instead",
                )
        configs[label] = EstimatorConfig(label=label, name=name, params=params, sweep=dict(sweep))
    return configs


def _parse_common(
    checker: _Checker,
    raw: dict[str, Any],
    where: str,
    estimators: dict[str, EstimatorConfig],
    seeds: tuple[int, ...],
    time_limit: float,
) -> dict[str, Any]:
    labels = raw.get("estimators", list(estimators))
    if not isinstance(labels, list) or not labels or not all(isinstance(v, str) for v in labels):
        checker.fail(f"{where}.estimators", labels, "a non-empty list of estimator labels")
    for label in labels:
        if label not in estimators:
            checker.fail(f"{where}.estimators", label, f"one of the defined labels {list(estimators)}")
    if len(set(labels)) != len(labels):
        checker.fail(f"{where}.estimators", labels, "each label once")
    return {
        "estimators": list(labels),
        "seeds": checker.seeds(raw["seeds"], f"{where}.seeds") if "seeds" in raw else seeds,
        "time_limit": (
            checker.positive_number(raw["time_limit"], f"{where}.time_limit")
            if "time_limit" in raw
            else time_limit
        ),
        "p": checker.int_list(raw.get("p", 1), f"{where}.p", allowed=(1, 2)),
        "sweep": _flag(checker, raw.get("sweep", True), f"{where}.sweep"),
    }


def _flag(checker: _Checker, value: object, key: str) -> bool:
    if not isinstance(value, bool):
        checker.fail(key, value, "true or false")
    return bool(value)


def _parse_accuracy(checker: _Checker, raw: dict[str, Any], where: str) -> dict[str, Any]:
    problem = raw.get("problem")
    if not isinstance(problem, str):
        checker.fail(f"{where}.problem", problem, "a problem name such as \"translation\"")
    params = raw.get("params", {})
    if not isinstance(params, dict):
        checker.fail(f"{where}.params", params, "a table of problem parameters")
    for key, value in params.items():
        if isinstance(value, list) and not value:
            checker.fail(f"{where}.params.{key}", value, "a value or a non-empty list of values")
    if "n" not in raw:
        raise SuiteError(checker.source, f"{where}.n", "missing; expected a positive integer or a list of them")
    return {
        "problem": problem,
        "params": dict(params),
        "n": checker.int_list(raw["n"], f"{where}.n"),
        "critic_steps": checker.int_list(raw.get("critic_steps", DEFAULT_CRITIC_STEPS), f"{where}.critic_steps"),
        "critic_data": _critic_data(checker, raw.get("critic_data", "fresh"), f"{where}.critic_data"),
    }


def _critic_data(checker: _Checker, value: object, key: str) -> str:
    if value not in CRITIC_DATA:
        checker.fail(key, value, " or ".join(f'"{choice}"' for choice in CRITIC_DATA))
    return str(value)


def _parse_cost(checker: _Checker, raw: dict[str, Any], where: str) -> dict[str, Any]:
    for key in ("n", "d"):
        if key not in raw:
            raise SuiteError(checker.source, f"{where}.{key}", "missing; expected a positive integer or a list of them")
    device = raw.get("device", "cpu")
    if device not in ("cpu", "cuda"):
        checker.fail(f"{where}.device", device, "\"cpu\" or \"cuda\"")
    return {
        "n": checker.int_list(raw["n"], f"{where}.n"),
        "d": checker.int_list(raw["d"], f"{where}.d"),
        "repeats": checker.positive_int(raw.get("repeats", DEFAULT_REPEATS), f"{where}.repeats"),
        "device": device,
    }


def _parse_training(checker: _Checker, raw: dict[str, Any], where: str) -> dict[str, Any]:
    data = raw.get("data")
    if isinstance(data, str):
        data = [data]
    if not isinstance(data, list) or not data or not all(isinstance(v, str) for v in data):
        checker.fail(f"{where}.data", data, "a data set name or a non-empty list of them")
    for key in ("steps", "batch_size"):
        if key not in raw:
            raise SuiteError(checker.source, f"{where}.{key}", "missing; expected a positive integer")
    trainer: dict[str, Any] = {
        "steps": checker.positive_int(raw["steps"], f"{where}.steps"),
        "batch_size": checker.positive_int(raw["batch_size"], f"{where}.batch_size"),
    }
    for key in _TRAINER_INTEGERS:
        if key in raw:
            trainer[key] = checker.positive_int(raw[key], f"{where}.{key}")
    if "lr" in raw:
        trainer["lr"] = checker.positive_number(raw["lr"], f"{where}.lr")
    if "betas" in raw:
        betas = raw["betas"]
        valid = (
            isinstance(betas, list)
            and len(betas) == 2
            and all(_is_number(b) and 0 <= b < 1 for b in betas)
        )
        if not valid:
            checker.fail(f"{where}.betas", betas, "two numbers in [0, 1), such as [0.5, 0.9]")
        trainer["betas"] = [float(b) for b in betas]
    return {"data": list(data), "trainer": trainer}


_TASK_PARSERS = {"accuracy": _parse_accuracy, "cost": _parse_cost, "training": _parse_training}


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


class _Checker:
    """Type checks that raise ``SuiteError`` naming the file, key path and value."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, key: str, value: object, expected: str) -> NoReturn:
        raise SuiteError(self.source, key, f"invalid value {format_value(value)}; expected {expected}")

    def unknown_keys(self, table: dict[str, Any], where: str, allowed: tuple[str, ...]) -> None:
        for key in table:
            if key not in allowed:
                path = f"{where}.{key}" if where else key
                raise SuiteError(self.source, path, f"unknown key; allowed keys: {', '.join(sorted(allowed))}")

    def positive_int(self, value: object, key: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            self.fail(key, value, "a positive integer")
        return int(value)  # type: ignore[call-overload]

    def positive_number(self, value: object, key: str) -> float:
        if not _is_number(value) or value <= 0:  # type: ignore[operator]
            self.fail(key, value, "a positive number")
        return float(value)  # type: ignore[arg-type]

    def int_list(self, value: object, key: str, allowed: tuple[int, ...] | None = None) -> list[int]:
        values: list[Any] = value if isinstance(value, list) else [value]
        expected = (
            f"one of {list(allowed)} or a list of them"
            if allowed
            else "a positive integer or a non-empty list of them"
        )
        if not values:
            self.fail(key, value, expected)
        for item in values:
            if isinstance(item, bool) or not isinstance(item, int) or item < 1:
                self.fail(key, value, expected)
            if allowed is not None and item not in allowed:
                self.fail(key, value, expected)
        if len(set(values)) != len(values):
            self.fail(key, value, "each value once")
        return [int(v) for v in values]

    def seeds(self, value: object, key: str) -> tuple[int, ...]:
        expected = "a non-empty list of distinct non-negative integers such as [0, 1, 2]"
        if not isinstance(value, list) or not value:
            self.fail(key, value, expected)
        for item in value:  # type: ignore[union-attr]
            if isinstance(item, bool) or not isinstance(item, int) or item < 0:
                self.fail(key, value, expected)
        if len(set(value)) != len(value):  # type: ignore[arg-type]
            self.fail(key, value, expected)
        return tuple(value)  # type: ignore[arg-type]
