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


# Seeds of the fresh training pairs of a critic start here, far above any
# evaluation seed, so a critic never trains on an evaluation pair.
FRESH_SEED_OFFSET = 2**40
FRESH_SEEDS_PER_CELL = 2**20


def run_accuracy(cell: dict[str, Any]) -> TaskOutcome:
    """Estimate W_p on a problem with a known distance and compare with the truth.

    The evaluation pair is ``problem.sample(n, seed)`` in float64. Every
    estimator's value, and its gradient in the source samples x, is read on
    that pair. A critic (an estimator with ``n_critic``) first trains for
    ``critic_steps`` steps in total: ``ceil(critic_steps / n_critic)`` calls,
    the last on the evaluation pair. With ``critic_data = "fresh"`` every
    earlier call gets a new pair from the problem, as a critic gets new
    batches in training, and the samples used are counted over all calls;
    with ``"fixed"`` every call sees the evaluation pair. Any other estimator
    is called once.

    Where the problem has a known transport map, the result compares
    g_i = -d estimate / d x_i with the true -dW_p/dx_i
    (:meth:`otbench.problems.Problem.true_gradient`): the mean cosine over
    samples, and the normalised squared error sum ||g - g*||^2 / sum ||g*||^2
    (null when the estimator's scale is unknown).

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
    n, p, seed = cell["n"], cell["p"], cell["seed"]
    settings = cell.get("settings") or {}

    def pair(pair_seed: int) -> tuple[Any, Any]:
        x, y = problem.sample(n, pair_seed)
        return torch.as_tensor(x, dtype=torch.float64), torch.as_tensor(y, dtype=torch.float64)

    x, y = pair(seed)
    truth = float(problem.true_distance(p))
    truth_stderr = float(problem.true_distance_stderr(p))

    torch.manual_seed(seed)
    estimator = otbench.estimator(cell["estimator_name"], **cell["estimator_params"])
    capabilities = estimator.capabilities
    n_critic = getattr(estimator, "n_critic", None)
    calls = 1
    fresh = False
    if capabilities.inner_loop and n_critic and settings.get("critic_steps"):
        calls = math.ceil(settings["critic_steps"] / n_critic)
        fresh = settings.get("critic_data", "fresh") == "fresh"

    inner_seconds = 0.0
    iterations: int | None = None
    samples_used = 0
    for call in range(calls - 1):
        if fresh:
            train_x, train_y = pair(FRESH_SEED_OFFSET + seed * FRESH_SEEDS_PER_CELL + call)
        else:
            train_x, train_y = x, y
        estimator(train_x, train_y)
        inner_seconds, iterations = _add_solve(estimator, inner_seconds, iterations)
        samples_used += int(train_x.shape[0] + train_y.shape[0]) if fresh else 0

    x_eval = x.clone().requires_grad_(True)
    estimate = estimator(x_eval, y)
    inner_seconds, iterations = _add_solve(estimator, inner_seconds, iterations)
    samples_used += int(x.shape[0] + y.shape[0])
    value = float(estimate.detach())
    solve = _last_solve(estimator)

    ratio = value / truth if truth != 0 else None
    relative_error = None
    if capabilities.scale_known and truth != 0:
        relative_error = abs(value - truth) / truth
    result = {
        "estimate": value,
        "truth": truth,
        "truth_stderr": truth_stderr,
        "bias": value - truth if capabilities.scale_known else None,
        "relative_error": relative_error,
        "ratio": ratio,
        "scale_known": bool(capabilities.scale_known),
        "inner_seconds": inner_seconds,
        "iterations": iterations,
        "converged": None if solve.converged is None else bool(solve.converged),
        "samples_used": samples_used,
        "calls": calls,
        **_gradient_agreement(problem, p, x_eval, estimate, bool(capabilities.scale_known)),
    }
    # None means the estimator has no stopping criterion (a critic), which is not a failure.
    if solve.converged is False:
        return TaskOutcome(result, status="not_converged", message="the last solve did not converge")
    return TaskOutcome(result)


def _add_solve(estimator: Any, seconds: float, iterations: int | None) -> tuple[float, int | None]:
    """Add the last solve's seconds and iterations to the running totals."""
    solve = _last_solve(estimator)
    if solve.iterations is not None:
        iterations = (iterations or 0) + int(solve.iterations)
    return seconds + float(solve.seconds), iterations


def _gradient_agreement(problem: Any, p: int, x: Any, estimate: Any, scale_known: bool) -> dict[str, Any]:
    """Compare -d estimate / dx with the true -dW_p/dx, where the problem has a known map.

    Returns ``cosine`` (mean over samples of the cosine between the two
    gradients; a sample whose estimated gradient is exactly 0 counts as 0),
    ``gradient_error`` (sum ||g - g*||^2 / sum ||g*||^2, or null when the
    scale is unknown) and ``gradient_zero_fraction``; all null without a map.
    """
    import torch

    empty = {"cosine": None, "gradient_error": None, "gradient_zero_fraction": None}
    if not problem.has_transport_map or not estimate.requires_grad:
        return empty
    (gradient,) = torch.autograd.grad(estimate, x, allow_unused=True)
    if gradient is None:
        return empty
    g = -gradient.detach()
    target = problem.true_gradient(x.detach(), p)
    g_norm = torch.linalg.vector_norm(g, dim=1)
    target_norm = torch.linalg.vector_norm(target, dim=1)
    valid = target_norm > 0
    denominator = (g_norm * target_norm).clamp_min(torch.finfo(g.dtype).tiny)
    cosines = torch.where(g_norm > 0, (g * target).sum(dim=1) / denominator, 0.0)
    error = None
    if scale_known:
        error = float(((g - target) ** 2).sum() / (target**2).sum())
    return {
        "cosine": float(cosines[valid].mean()) if bool(valid.any()) else None,
        "gradient_error": error,
        "gradient_zero_fraction": float((g_norm == 0).double().mean()),
    }


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
