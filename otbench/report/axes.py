"""Tick placement and labels for the log axes of the report's figures.

Matplotlib labels the minor ticks of a log axis that spans less than about
one decade (3x10^2, 4x10^2, ...), and on a narrow panel those labels overlap.
These helpers label only a few major ticks, as plain numbers.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import matplotlib.ticker as ticker
import numpy as np
from matplotlib.axes import Axes
from matplotlib.axis import Axis

__all__ = ["format_log_axis", "format_symlog_axis", "plain_number", "tick_at_sizes"]

# Minimum distance between two labelled sample sizes, as a fraction of the
# axis's log span; closer sizes keep their tick but lose the label.
MIN_LABEL_GAP = 0.12

# Multiples of a power of ten tried in turn until at least two fall inside the axis.
_SUBS_CHOICES = ((1.0,), (1.0, 2.0, 5.0), (1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0))


def plain_number(value: float, _position: float | None = None) -> str:
    """Format a tick value with up to three significant digits: 0.01, 0.25, 3, 2048, 1e+05."""
    return f"{value:.3g}"


def tick_at_sizes(ax: Axes, sizes: Iterable[float]) -> None:
    """Tick a log x axis at the sample sizes that were run, labelled as plain integers.

    Sizes closer than ``MIN_LABEL_GAP`` of the axis to the previous labelled
    size keep their tick without a label.
    """
    values = sorted({int(v) for v in sizes if v is not None and math.isfinite(v) and v > 0})
    if not values:
        return
    span = max(math.log10(values[-1]) - math.log10(values[0]), 1e-9)
    labels, last = [], None
    for value in values:
        if last is None or (math.log10(value) - math.log10(last)) / span >= MIN_LABEL_GAP:
            labels.append(str(value))
            last = value
        else:
            labels.append("")
    ax.set_xticks(values, labels)
    ax.xaxis.set_minor_formatter(ticker.NullFormatter())


def format_log_axis(ax: Axes, axis: str, *, decades_only: bool = False) -> None:
    """Label a log axis at powers of ten, or at a few round numbers where it spans less than a decade.

    Call it after the data are drawn, because it reads the axis limits.

    Args:
        ax: the axes.
        axis: ``"x"`` or ``"y"``.
        decades_only: label powers of ten only, widening the limits to the
            enclosing powers of ten where fewer than two are inside them.
            Used for seconds, where a decade is the natural unit of comparison.
    """
    scale_axis, low, high = _axis_and_limits(ax, axis)
    if not (0 < low < high and math.isfinite(high)):
        return
    if decades_only:
        if len(_inside(low, high, (1.0,))) < 2:
            low = 10.0 ** math.floor(math.log10(low))
            high = max(10.0 ** math.ceil(math.log10(high)), 10 * low)
            (ax.set_xlim if axis == "x" else ax.set_ylim)(low, high)
        scale_axis.set_major_locator(ticker.LogLocator(base=10, subs=(1.0,), numticks=8))
    else:
        subs = next((subs for subs in _SUBS_CHOICES if len(_inside(low, high, subs)) >= 2), None)
        if subs is None:
            # Fewer than two of 1..9 x 10^k inside the limits (for example 1.05 to 1.7),
            # so tick three values spaced evenly on the log scale, rounded to two digits.
            values = sorted({float(f"{v:.2g}") for v in np.geomspace(low, high, 5)[1:-1]})
            scale_axis.set_major_locator(ticker.FixedLocator(values))
        else:
            scale_axis.set_major_locator(ticker.LogLocator(base=10, subs=subs, numticks=8))
    scale_axis.set_major_formatter(ticker.FuncFormatter(plain_number))
    scale_axis.set_minor_formatter(ticker.NullFormatter())


def format_symlog_axis(ax: Axes, axis: str, linear_width: float) -> None:
    """Put a non-negative axis on a symmetric log scale, linear in [0, ``linear_width``], from 0 up.

    Unlike a log axis, it shows zero, so values of 0 stay visible. Call it
    after the data are drawn, because it reads the axis limits. Ticks are at
    0 and at 1, 2 and 5 times powers of ten from ``linear_width`` up. Where
    the axis spans two decades or more above ``linear_width``, only powers of
    ten are ticked. Where it ends below ten times ``linear_width``, half of
    ``linear_width`` is ticked too.
    """
    if axis == "x":
        ax.set_xscale("symlog", linthresh=linear_width)
        ax.set_xlim(left=0)
    else:
        ax.set_yscale("symlog", linthresh=linear_width)
        ax.set_ylim(bottom=0)
    scale_axis, _, high = _axis_and_limits(ax, axis)
    values = [0.0]
    if high < 10 * linear_width:
        values.append(linear_width / 2)
    if high > linear_width:
        subs = (1.0,) if math.log10(high / linear_width) >= 2 else (1.0, 2.0, 5.0)
        values += _inside(linear_width, high, subs)
    else:
        values.append(linear_width)
    scale_axis.set_major_locator(ticker.FixedLocator(values))
    scale_axis.set_major_formatter(ticker.FuncFormatter(plain_number))
    scale_axis.set_minor_formatter(ticker.NullFormatter())


def _axis_and_limits(ax: Axes, axis: str) -> tuple[Axis, float, float]:
    if axis not in ("x", "y"):
        raise ValueError(f"axis={axis!r} is invalid; expected 'x' or 'y'")
    low, high = ax.get_xlim() if axis == "x" else ax.get_ylim()
    return (ax.xaxis if axis == "x" else ax.yaxis), min(low, high), max(low, high)


def _inside(low: float, high: float, subs: tuple[float, ...]) -> list[float]:
    """Return the values ``s * 10^k`` (s in ``subs``) that lie in [low, high]."""
    values = []
    for exponent in range(math.floor(math.log10(low)), math.ceil(math.log10(high)) + 1):
        values += [s * 10.0**exponent for s in subs if low <= s * 10.0**exponent <= high]
    return values
