"""Exit statuses, the usage error and option parsers shared by the subcommands."""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Sequence
from typing import Any

_EXIT_FAILURE = 1
_EXIT_USAGE = 2
_EXIT_INTERRUPTED = 130


class _UsageError(Exception):
    """A user mistake found by the CLI itself."""


def _positive_int(text: str) -> int:
    value = _parse_int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"invalid value {text!r}; expected a positive integer")
    return value


def _non_negative_int(text: str) -> int:
    value = _parse_int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"invalid value {text!r}; expected a non-negative integer")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid value {text!r}; expected a number") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"invalid value {text!r}; expected a positive finite number")
    return value


def _parse_int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid value {text!r}; expected an integer") from None


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.6g}"


def _estimator_params(items: Sequence[str]) -> dict[str, Any]:
    """Parse the ``--param`` values, which may set any estimator parameter except the order p."""
    params = _key_values(items, "--param")
    if "p" in params:
        raise _UsageError("--param p is not allowed because --p sets the order; use --p, for example --p 2")
    return params


def _key_values(items: Sequence[str], option: str) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise _UsageError(f"{option} {item!r} is invalid; expected KEY=VALUE, for example blur=0.05")
        try:
            values[key] = json.loads(text)
        except json.JSONDecodeError:
            values[key] = text
    return values
