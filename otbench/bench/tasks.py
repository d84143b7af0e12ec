"""The three benchmark tasks: distance accuracy, inner-loop cost and generator training.

:func:`run_cell` runs one cell in the current process and returns a record.
A failure becomes a status (``out_of_memory`` or ``error``) with its message
instead of an exception. The ``run_*`` task functions raise instead, so the
CLI can show a user mistake as an error.

otbench's estimators, problems, data sets and trainer are imported inside the
functions, so this module imports without them.
"""

from __future__ import annotations

import logging
import math
import statistics
import sys
import time
import warnings
from dataclasses import asdict, dataclass
from typing import Any

from .records import make_record

__all__ = ["TaskOutcome", "run_accuracy", "run_cell", "run_cost", "run_training"]

logger = logging.getLogger(__name__)


@dataclass
class TaskOutcome:
    """The numbers and status that one task measured.

    Attributes:
        result: the task-specific numbers of the record.
        status: ``ok`` or ``not_converged``.
        message: why the status is not ``ok``, or None.
        d: the dimension of one flattened sample when the task learned it, else None.
    """

    result: dict[str, Any]
    status: str = "ok"
    message: str | None = None
    d: int | None = None


def run_cell(cell: dict[str, Any]) -> dict[str, Any]:
    """Run one cell and return its record (schema in ``docs/records.md``).

    Warnings raised during the cell are kept in the record's message. A memory
    budget error, ``torch.OutOfMemoryError`` or ``MemoryError`` gives status
    ``out_of_memory``; any other exception gives ``error`` with
    ``"Type: message"``, and its traceback is logged at debug level.
    """
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            outcome = _TASKS[cell["task"]](cell)
            status, message, result = outcome.status, outcome.message, outcome.result
            if outcome.d is not None:
                cell = {**cell, "d": outcome.d}
        except Exception as error:  # noqa: BLE001 -- every failure becomes a record status
            status = "out_of_memory" if _is_out_of_memory(error) else "error"
            message = f"{type(error).__name__}: {error}"
            result = None
            logger.debug("cell %s failed", cell.get("cell_id"), exc_info=True)
    wall_seconds = time.perf_counter() - start
    warning_texts = _unique(f"{w.category.__name__}: {w.message}" for w in caught)
    if warning_texts:
        joined = "; ".join(warning_texts)
        message = joined if not message else f"{message}; warnings: {joined}"
    return make_record(cell, status=status, message=message, wall_seconds=wall_seconds, result=result)


def _is_out_of_memory(error: BaseException) -> bool:
    if isinstance(error, MemoryError):  # includes otbench's MemoryBudgetError
        return True
    torch = sys.modules.get("torch")
    out_of_memory = getattr(torch, "OutOfMemoryError", None) if torch is not None else None
    return out_of_memory is not None and isinstance(error, out_of_memory)


def _unique(texts: Any) -> list[str]:
    seen: list[str] = []
    for text in texts:
        if text not in seen:
            seen.append(text)
    return seen


def run_accuracy(cell: dict[str, Any]) -> TaskOutcome:
    """Estimate W_p on a problem with a known distance and compare with the truth.

    The pair is ``problem.sample(n, seed)`` in float64. An estimator with an
    inner loop and a critic (``n_critic``) is called ``ceil(critic_steps / n_critic)``
    times on the same pair, so that its critic trains for ``critic_steps`` steps
    in total. The last value is the estimate. Any other estimator is called once.
    The status is ``not_converged`` only when the last solve reports
    ``converged = False``. Critics report None (no stopping criterion), which
    is recorded as null with status ``ok``.

    Raises:
        ValueError: an invalid problem, estimator parameter or size.
    """
    import torch

    import otbench
    from otbench import problems

    problem = problems.get(cell["problem"], **cell["problem_params"])
    x, y = problem.sample(cell["n"], cell["seed"])
    x = torch.as_tensor(x, dtype=torch.float64)
    y = torch.as_tensor(y, dtype=torch.float64)
    truth = float(problem.true_distance(cell["p"]))

    torch.manual_seed(cell["seed"])
    estimator = otbench.estimator(cell["estimator_name"], **cell["estimator_params"])
    capabilities = estimator.capabilities
    n_critic = getattr(estimator, "n_critic", None)
    calls = 1
    if capabilities.inner_loop and n_critic:
        calls = math.ceil(cell["settings"]["critic_steps"] / n_critic)

    inner_seconds = 0.0
    iterations: int | None = None
    value = math.nan
    for _ in range(calls):
        value = float(estimator(x, y).detach())
        solve = _last_solve(estimator)
        inner_seconds += float(solve.seconds)
        if solve.iterations is not None:
            iterations = (iterations or 0) + int(solve.iterations)
    solve = _last_solve(estimator)

    ratio = value / truth if truth != 0 else None
    relative_error = None
    if capabilities.scale_known and truth != 0:
        relative_error = abs(value - truth) / truth
    result = {
        "estimate": value,
        "truth": truth,
        "relative_error": relative_error,
        "ratio": ratio,
        "scale_known": bool(capabilities.scale_known),
        "inner_seconds": inner_seconds,
        "iterations": iterations,
        "converged": None if solve.converged is None else bool(solve.converged),
        "samples_used": int(x.shape[0] + y.shape[0]),
        "calls": calls,
    }
    # None means the estimator has no stopping criterion (a critic), which is not a failure.
    if solve.converged is False:
        return TaskOutcome(result, status="not_converged", message="the last solve did not converge")
    return TaskOutcome(result)


def run_cost(cell: dict[str, Any]) -> TaskOutcome:
    """Time forward plus backward calls on standard Gaussian samples in float32.

    One untimed warm-up call comes first, then ``repeats`` timed calls. Peak
    memory is the resident memory added during the timed calls (Linux VmHWM,
    reset through ``/proc/self/clear_refs``), or the maximum CUDA memory
    allocated on a GPU; null where it cannot be read.

    Raises:
        ValueError: an invalid size or estimator parameter, or ``device = "cuda"``
            without a GPU.
    """
    import torch

    import otbench

    device = torch.device(cell["settings"].get("device", "cpu"))
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' was requested but torch sees no CUDA device; use device = \"cpu\"")
    n, d, repeats = cell["n"], cell["d"], cell["settings"]["repeats"]
    generator = torch.Generator().manual_seed(cell["seed"])
    x = torch.randn(n, d, generator=generator, dtype=torch.float32).to(device)
    y = torch.randn(n, d, generator=generator, dtype=torch.float32).to(device)
    x.requires_grad_(True)

    torch.manual_seed(cell["seed"])
    estimator = otbench.estimator(cell["estimator_name"], **cell["estimator_params"]).to(device)

    def call() -> float:
        x.grad = None
        _synchronize(device)
        start = time.perf_counter()
        estimator(x, y).backward()
        _synchronize(device)
        return time.perf_counter() - start

    call()  # warm-up: builds critics and optimisers, fills caches
    memory = _PeakMemory(device)
    call_seconds: list[float] = []
    inner_seconds: list[float] = []
    failed_solves = 0
    for _ in range(repeats):
        call_seconds.append(call())
        solve = _last_solve(estimator)
        inner_seconds.append(float(solve.seconds))
        if solve.converged is False:  # None: no stopping criterion, so nothing failed
            failed_solves += 1
    result = {
        "repeats": repeats,
        "call_seconds": call_seconds,
        "inner_seconds": inner_seconds,
        "call_seconds_median": statistics.median(call_seconds),
        "inner_seconds_median": statistics.median(inner_seconds),
        "peak_memory_bytes": memory.peak(),
        "threads": torch.get_num_threads(),
        "dtype": "float32",
        "device": str(device),
    }
    if failed_solves:
        message = f"{failed_solves} of {repeats} timed solves did not converge"
        return TaskOutcome(result, status="not_converged", message=message)
    return TaskOutcome(result)


def _last_solve(estimator: Any) -> Any:
    """Return ``estimator.last_solve``, which every call sets."""
    solve = estimator.last_solve
    assert solve is not None, "an estimator call returned without setting last_solve"
    return solve


def _synchronize(device: Any) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


class _PeakMemory:
    """Peak memory added after construction: CUDA max allocated, or Linux VmHWM minus VmRSS."""

    def __init__(self, device: Any) -> None:
        import torch

        self.device = device
        self.baseline: int | None = None
        # NOTE: the CUDA branch has not run on a GPU yet; only the CPU path is tested.
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
            self.baseline = torch.cuda.memory_allocated(device)
            return
        _release_free_heap()
        try:
            with open("/proc/self/clear_refs", "w") as handle:
                handle.write("5")  # resets VmHWM to the current resident size
            self.baseline = _proc_status_bytes("VmRSS")
        except OSError:
            self.baseline = None

    def peak(self) -> int | None:
        import torch

        if self.baseline is None:
            return None
        if self.device.type == "cuda":
            return int(torch.cuda.max_memory_allocated(self.device)) - self.baseline
        high_water = _proc_status_bytes("VmHWM")
        return None if high_water is None else max(0, high_water - self.baseline)


def _release_free_heap() -> None:
    """Return freed heap memory to the OS (glibc ``malloc_trim``), where the C library has it.

    A persistent worker keeps memory freed by earlier cells in its heap and
    reuses it without raising its resident size, which would make the next
    cell's peak look smaller than it is. Buffers torch's CPU allocator caches
    are not released, so the peak can still understate small allocations.
    """
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if name is None:
        return
    try:
        ctypes.CDLL(name).malloc_trim(0)
    except (OSError, AttributeError):
        return


def _proc_status_bytes(key: str) -> int | None:
    """Read a ``kB`` field of ``/proc/self/status`` in bytes, or None if absent."""
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def run_training(cell: dict[str, Any]) -> TaskOutcome:
    """Train a generator on a data set with the cell's estimator as the loss.

    ``not_converged_steps`` in the result counts the estimator calls whose
    solve reported ``converged = False`` (None, from a critic, does not count);
    the status stays ``ok``.

    Raises:
        ValueError: an invalid data set name, estimator parameter or trainer setting.
    """
    import torch

    import otbench
    from otbench import data
    from otbench.train import Trainer

    dataset = data.load(cell["data"])
    torch.manual_seed(cell["seed"])
    estimator = otbench.estimator(cell["estimator_name"], **cell["estimator_params"])
    not_converged = [0]

    def count_not_converged(module: Any, inputs: Any, output: Any) -> None:
        if module.last_solve is not None and module.last_solve.converged is False:
            not_converged[0] += 1

    estimator.register_forward_hook(count_not_converged)
    settings = dict(cell["settings"])
    if "betas" in settings:
        settings["betas"] = tuple(settings["betas"])
    trainer = Trainer(estimator, dataset, seed=cell["seed"], **settings)
    outcome = trainer.run()

    sample_shape = [int(s) for s in dataset.sample_shape]
    snapshot = None
    if outcome.snapshots:
        snapshot = outcome.snapshots[max(outcome.snapshots)].detach().cpu().tolist()
    result = {
        "steps": [asdict(step) for step in outcome.steps],
        "evaluations": list(outcome.evaluations),
        "final": dict(outcome.final),
        "snapshot": snapshot,
        "sample_shape": sample_shape,
        "not_converged_steps": not_converged[0],
    }
    return TaskOutcome(result, d=math.prod(sample_shape))


_TASKS = {"accuracy": run_accuracy, "cost": run_cost, "training": run_training}
