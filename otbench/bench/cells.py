"""Expand a suite into cells: one task, estimator, problem or data set, size and seed.

A cell is a flat dict with the record keys of ``docs/records.md`` that
describe the configuration (``task``, ``estimator``, ``estimator_name``,
``estimator_params``, ``problem``, ``problem_params``, ``data``, ``n``, ``d``,
``p``, ``seed``), plus ``settings`` (the task's own settings, such as
``critic_steps``), ``budget`` (the values of the estimator's sweep and, for
a critic in an accuracy cell, its ``critic_steps``: what the report draws as
one estimator's accuracy-cost trade-off), ``time_limit`` (seconds) and
``cell_id``.

The id is the first 16 hex digits of the SHA-256 of the canonical JSON
(sorted keys, no spaces) of the configuration without ``cell_id`` and
``time_limit``, so a longer time limit keeps the ids of finished cells.
"""

from __future__ import annotations

import hashlib
import inspect
import itertools
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from .records import json_safe
from .suite import Suite, SuiteError, format_value

__all__ = ["Resolution", "cell_id", "resolve_suite"]

# Cell keys left out of the id: they control how a cell runs, not what it measures.
_RUN_CONTROL_KEYS = ("cell_id", "time_limit")


@dataclass(frozen=True)
class Resolution:
    """The cells of a suite and the combinations it skips.

    Attributes:
        cells: every cell to run, in suite order, each id once.
        skipped: ``{"block", "task", "estimator", "problem" or "data", "p", "reason"}``
            for each combination that is not a cell.
    """

    cells: list[dict[str, Any]]
    skipped: list[dict[str, Any]]

    def to_json(self) -> dict[str, Any]:
        """Return the content of ``resolved.json``."""
        return {"cells": self.cells, "skipped": self.skipped}


def cell_id(cell: dict[str, Any]) -> str:
    """Return the 16-hex-digit id of ``cell``'s configuration."""
    config = {key: value for key, value in cell.items() if key not in _RUN_CONTROL_KEYS}
    canonical = json.dumps(config, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


def resolve_suite(suite: Suite) -> Resolution:
    """Check the suite's registry names and parameters and expand it into cells.

    Estimators are built once each (``otbench.estimator(name, p=..., **params)``)
    to check their parameters, problems once per parameter set, and data sets
    are loaded once each to read their sample shape.

    Raises:
        SuiteError: an unknown estimator, problem or data set name (the message
            lists the available ones), or parameters the estimator or problem rejects.
    """
    resolver = _Resolver(suite)
    cells: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    seen: set[str] = set()
    for task, index, settings in suite.blocks:
        where = f"{task}[{index}]"
        expand = {"accuracy": resolver.accuracy, "cost": resolver.cost, "training": resolver.training}[task]
        for item in expand(where, settings):
            if "reason" in item:
                skipped.append(item)
                continue
            item["cell_id"] = cell_id(item)
            if item["cell_id"] in seen:
                continue
            seen.add(item["cell_id"])
            cells.append(item)
    return Resolution(cells=cells, skipped=skipped)


class _Resolver:
    """Registry checks with caches, so each estimator and data set is built once."""

    def __init__(self, suite: Suite) -> None:
        import otbench

        self.suite = suite
        self.otbench = otbench
        self.sample_shapes: dict[str, list[int]] = {}
        for config in suite.estimators.values():
            self._check_estimator(config.label)

    def _check_estimator(self, label: str) -> None:
        config = self.suite.estimators[label]
        where = f"estimators.{label}"
        available = self.otbench.available_estimators()
        if config.name not in available:
            raise SuiteError(
                self.suite.source,
                f"{where}.name" if config.name != label else where,
                f"unknown estimator {format_value(config.name)}; available: {', '.join(available)}",
            )
        orders = self.otbench.capabilities(config.name).orders
        for params, _ in config.variants():
            try:
                self.otbench.estimator(config.name, p=orders[0], **params)
            except (ValueError, TypeError) as error:
                raise SuiteError(
                    self.suite.source, where, f"invalid parameters {format_value(params)}: {error}"
                ) from None

    def _variants(self, label: str, p: int, sweep: bool) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
        """Yield the record fields of each configuration of ``label`` at order ``p``, with its budget.

        With ``sweep`` False, the label runs once with its table's parameters.
        """
        config = self.suite.estimators[label]
        for params, budget in config.variants() if sweep else [(dict(config.params), {})]:
            fields = {
                "estimator": label,
                "estimator_name": config.name,
                "estimator_params": json_safe({"p": p, **params})[0],
            }
            yield fields, json_safe(budget)[0]

    def _is_critic(self, label: str) -> bool:
        """True for an estimator trained by ``n_critic`` steps per call, whose accuracy depends on critic_steps."""
        from otbench.estimators import estimator_class

        cls = estimator_class(self.suite.estimators[label].name)
        return "n_critic" in inspect.signature(cls.__init__).parameters

    def _unsupported(self, label: str, p: int) -> str | None:
        config = self.suite.estimators[label]
        orders = self.otbench.capabilities(config.name).orders
        if p in orders:
            return None
        return f"estimator {format_value(config.name)} supports p in {list(orders)} only"

    def accuracy(self, where: str, settings: dict[str, Any]) -> Iterator[dict[str, Any]]:
        from otbench import problems

        name = settings["problem"]
        if name not in problems.available():
            raise SuiteError(
                self.suite.source,
                f"{where}.problem",
                f"unknown problem {format_value(name)}; available: {', '.join(problems.available())}",
            )
        for params in _grid(settings["params"]):
            try:
                problem = problems.get(name, **params)
            except (ValueError, TypeError) as error:
                raise SuiteError(
                    self.suite.source, f"{where}.params", f"invalid parameters {format_value(params)}: {error}"
                ) from None
            problem_params = json_safe(problem.params())[0]
            for label, p in itertools.product(settings["estimators"], settings["p"]):
                reason = self._unsupported(label, p)
                if reason is None and p not in problem.orders:
                    orders = list(problem.orders)
                    reason = f"problem {format_value(name)} knows the true W_p only for p in {orders}"
                if reason is not None:
                    yield {"block": where, "task": "accuracy", "estimator": label, "problem": name,
                           "problem_params": problem_params, "p": p, "reason": reason}
                    continue
                # Only critics train for critic_steps; the others would repeat one cell per value.
                critic = self._is_critic(label)
                steps_choices = settings["critic_steps"] if critic else [None]
                for (fields, budget), steps in itertools.product(self._variants(label, p, settings["sweep"]), steps_choices):
                    task_settings = {"critic_steps": steps, "critic_data": settings["critic_data"]} if critic else {}
                    if critic:
                        budget = {**budget, "critic_steps": steps}
                    for n, seed in itertools.product(settings["n"], settings["seeds"]):
                        yield {
                            "task": "accuracy",
                            **fields,
                            "problem": name,
                            "problem_params": problem_params,
                            "data": None,
                            "n": n,
                            "d": int(problem.dim),
                            "p": p,
                            "seed": seed,
                            "settings": task_settings,
                            "budget": budget,
                            "time_limit": settings["time_limit"],
                        }

    def cost(self, where: str, settings: dict[str, Any]) -> Iterator[dict[str, Any]]:
        for label, p in itertools.product(settings["estimators"], settings["p"]):
            reason = self._unsupported(label, p)
            if reason is not None:
                yield {"block": where, "task": "cost", "estimator": label, "p": p, "reason": reason}
                continue
            for (fields, budget), n, d, seed in itertools.product(
                self._variants(label, p, settings["sweep"]), settings["n"], settings["d"], settings["seeds"]
            ):
                yield {
                    "task": "cost",
                    **fields,
                    "budget": budget,
                    "problem": None,
                    "problem_params": {},
                    "data": None,
                    "n": n,
                    "d": d,
                    "p": p,
                    "seed": seed,
                    "settings": {"repeats": settings["repeats"], "device": settings["device"]},
                    "time_limit": settings["time_limit"],
                }

    def training(self, where: str, settings: dict[str, Any]) -> Iterator[dict[str, Any]]:
        trainer = settings["trainer"]
        for data in settings["data"]:
            shape = self._sample_shape(where, data)
            for label, p in itertools.product(settings["estimators"], settings["p"]):
                reason = self._unsupported(label, p)
                if reason is not None:
                    yield {"block": where, "task": "training", "estimator": label, "data": data, "p": p,
                           "reason": reason}
                    continue
                for (fields, budget), seed in itertools.product(self._variants(label, p, settings["sweep"]), settings["seeds"]):
                    yield {
                        "task": "training",
                        **fields,
                        "budget": budget,
                        "problem": None,
                        "problem_params": {},
                        "data": data,
                        "n": trainer["batch_size"],
                        "d": math.prod(shape),
                        "p": p,
                        "seed": seed,
                        "settings": dict(trainer),
                        "time_limit": settings["time_limit"],
                    }

    def _sample_shape(self, where: str, name: str) -> list[int]:
        from otbench import data

        if name not in self.sample_shapes:
            if name not in data.available():
                raise SuiteError(
                    self.suite.source,
                    f"{where}.data",
                    f"unknown data set {format_value(name)}; available: {', '.join(data.available())}",
                )
            self.sample_shapes[name] = [int(s) for s in data.load(name).sample_shape]
        return self.sample_shapes[name]


def _grid(params: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Yield one parameter dict per combination of the list-valued entries, keys sorted."""
    keys = sorted(params)
    choices = [params[key] if isinstance(params[key], list) else [params[key]] for key in keys]
    for values in itertools.product(*choices):
        yield dict(zip(keys, values))
