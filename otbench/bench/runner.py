"""Run a suite's cells in a pool of worker processes and record each one.

The runner starts ``workers`` persistent processes with the ``spawn`` start
method, so each begins with clean torch state, and each sets
``torch.set_num_threads(max(1, cpu_count // workers))``. The parent hands out
one cell at a time through a pipe per worker and enforces each cell's
``time_limit``. A worker past its limit is killed, the cell gets a
``timeout`` record and a fresh worker takes its place. A worker that dies
(a segmentation fault, the kernel's out-of-memory killer) gives an ``error``
record with its exit code.

Each finished cell is appended to ``RUN/records.jsonl`` and synced before
the next one is handed out, so a crash, ``kill -9`` or Ctrl-C never loses a
finished cell. ``resume=True`` skips the cells already recorded.

Design note: cells are independent and carry their whole configuration, so a
distributed engine such as Ray could run the same cells (``run_cell`` on each)
in place of the local pool, with the parent still writing the records. Only
the local pool is implemented.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import signal
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from .cells import Resolution, resolve_suite
from .environment import collect_environment
from .records import RecordWriter, make_record, read_records
from .suite import Suite, SuiteError

__all__ = ["ProgressCallback", "RunFolderError", "RunSummary", "run_suite"]

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[str, dict[str, Any]], None]

# Seconds a worker may take to import torch and otbench before its cell's own limit starts.
_STARTUP_ALLOWANCE = 120.0
# Seconds to wait for a worker to exit after asking it to stop, before killing it.
_STOP_GRACE = 5.0


class RunFolderError(ValueError):
    """The output folder cannot be used, for example because it contains records and resume is off."""


@dataclass
class RunSummary:
    """Cell counts and the run folder of one :func:`run_suite` call.

    Attributes:
        run_dir: the run folder.
        cells: cells in the resolved suite.
        skipped: combinations of the suite that are not cells (listed in resolved.json).
        already_done: cells found in records.jsonl and not run again.
        counts: statuses of the cells run by this call.
    """

    run_dir: Path
    cells: int
    skipped: int
    already_done: int
    counts: Counter[str] = field(default_factory=Counter)

    @property
    def records_path(self) -> Path:
        """The path of ``records.jsonl``."""
        return self.run_dir / "records.jsonl"


def run_suite(
    suite: Suite,
    out_dir: str | Path,
    *,
    workers: int | None = None,
    resume: bool = False,
    callback: ProgressCallback | None = None,
    command: Sequence[str] | None = None,
    log_level: int | None = None,
) -> RunSummary:
    """Resolve ``suite``, run its cells and write the run folder ``out_dir``.

    Args:
        suite: a suite from :func:`otbench.bench.load_suite`.
        out_dir: the run folder; created if missing.
        workers: worker processes; ``os.cpu_count()`` if None.
        resume: keep the records already in ``out_dir/records.jsonl`` and run
            only the cells missing from them. The suite must resolve to the
            cells of ``out_dir/resolved.json``; only ``time_limit`` may change.
        callback: receives ``(event, info)`` for the events ``"start"``,
            ``"cell_started"``, ``"cell_finished"`` (with the ``record``) and
            ``"worker_restarted"``.
        command: the command line saved in environment.json.
        log_level: logging level configured in the workers; None leaves their
            logging unconfigured.

    Returns:
        A summary with the status counts of the cells run.

    Raises:
        SuiteError: the suite names an unknown estimator, problem or data set,
            or parameters they reject, or every combination it has is skipped.
        RunFolderError: ``out_dir`` is a file, lies under a file or is not
            writable. It is also raised when ``out_dir`` contains records and
            ``resume`` is False, and when ``resume`` is True and the suite's
            cells differ from those of ``out_dir/resolved.json``. These checks
            run before any file is written. A write that fails later raises it too.
        KeyboardInterrupt: after stopping the workers; finished cells are kept.
    """
    cpu_count = os.cpu_count() or 1
    if workers is None:
        workers = cpu_count
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers={workers!r} is invalid; expected a positive integer")
    threads = max(1, cpu_count // workers)
    run_dir = Path(out_dir)
    records_path = run_dir / "records.jsonl"
    _check_run_dir(run_dir, records_path, resume)

    resolution = resolve_suite(suite)
    if not resolution.cells:
        raise SuiteError(suite.source, "", _no_cells_message(resolution.skipped))
    if resume:
        _check_same_cells(run_dir, records_path, suite, resolution)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        finished = {record["cell_id"] for record in read_records(records_path, repair=True)} if resume else set()
        _write_run_files(run_dir, suite, resolution, workers, threads, command, resume)
    except OSError as error:
        raise RunFolderError(
            f"cannot write to the output folder {run_dir}: {error}; choose another output folder"
        ) from None

    pending = [cell for cell in resolution.cells if cell["cell_id"] not in finished]
    summary = RunSummary(
        run_dir=run_dir,
        cells=len(resolution.cells),
        skipped=len(resolution.skipped),
        already_done=len(resolution.cells) - len(pending),
    )
    notify = callback or (lambda event, info: None)
    notify(
        "start",
        {
            "run_dir": str(run_dir),
            "cells": summary.cells,
            "to_run": len(pending),
            "already_done": summary.already_done,
            "skipped": summary.skipped,
            "workers": min(workers, max(1, len(pending))),
            "threads_per_worker": threads,
        },
    )
    logger.info("run %s: %d cells to run, %d already recorded", run_dir, len(pending), summary.already_done)
    if pending:
        try:
            writer = RecordWriter(records_path)
        except OSError as error:
            raise RunFolderError(f"cannot open {records_path} for appending: {error}") from None
        with writer:
            pool = _Pool(min(workers, len(pending)), threads, log_level, writer, summary.counts, notify)
            pool.run(pending)
    return summary


def _check_run_dir(run_dir: Path, records_path: Path, resume: bool) -> None:
    """Raise ``RunFolderError`` when ``run_dir`` cannot be a run folder, before anything is resolved."""
    existing = run_dir
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        if existing == run_dir:
            problem = f"the output folder {run_dir} exists and is not a folder"
        else:
            problem = f"cannot create the output folder {run_dir} because {existing} is not a folder"
        raise RunFolderError(f"{problem}; choose another output folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise RunFolderError(
            f"{existing} is not writable, so the output folder {run_dir} cannot be used; "
            f"choose another output folder"
        )
    if records_path.exists() and not records_path.is_file():
        raise RunFolderError(f"{records_path} exists and is not a file; choose another output folder")
    if not resume and records_path.exists() and records_path.stat().st_size > 0:
        raise RunFolderError(
            f"{run_dir} already contains records ({records_path}); pass --resume to "
            f"finish that run, or choose another output folder"
        )


def _check_same_cells(run_dir: Path, records_path: Path, suite: Suite, resolution: Resolution) -> None:
    """Raise ``RunFolderError`` when the folder's recorded cells are not the cells of ``resolution``.

    The ids come from the folder's ``resolved.json``, or from its records when
    that file is missing. Ids leave out the time limit, so a suite that only
    raises ``time_limit`` resumes.
    """
    resolved_path = run_dir / "resolved.json"
    new_ids = {cell["cell_id"] for cell in resolution.cells}
    advice = (
        f"resume with the suite the run started with ({run_dir / 'suite.toml'}), "
        f"or choose another output folder for this suite"
    )
    if not resolved_path.exists():
        unknown = {record["cell_id"] for record in read_records(records_path)} - new_ids
        if unknown:
            raise RunFolderError(
                f"{records_path} contains {len(unknown)} cells that suite {suite.source} does not have; {advice}"
            )
        return
    try:
        resolved = json.loads(resolved_path.read_text(encoding="utf-8"))
        old_ids = {cell["cell_id"] for cell in resolved["cells"]}
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise RunFolderError(
            f"cannot read the cells of {resolved_path} ({type(error).__name__}: {error}), so the run "
            f"cannot be resumed; choose another output folder"
        ) from None
    if old_ids != new_ids:
        raise RunFolderError(
            f"suite {suite.source} does not match the run in {run_dir}: {len(new_ids - old_ids)} of its "
            f"{len(new_ids)} cells are not in {resolved_path}, and {len(old_ids - new_ids)} of the run's "
            f"{len(old_ids)} cells are not in the suite (any change except time_limit changes a cell's id); "
            f"{advice}"
        )


def _no_cells_message(skipped: list[dict[str, Any]]) -> str:
    """Describe a suite whose combinations are all skipped, one entry per block and reason."""
    reasons = Counter(f"{item['block']}: {item['reason']}" for item in skipped)
    listed = "; ".join(f"{reason} ({count} skipped)" for reason, count in reasons.items())
    return (
        f"no valid cell to run: all {len(skipped)} combinations are skipped ({listed}); "
        f"change the orders p or the estimators of the blocks"
    )


def _write_run_files(
    run_dir: Path,
    suite: Suite,
    resolution: Resolution,
    workers: int,
    threads: int,
    command: Sequence[str] | None,
    resume: bool,
) -> None:
    """Write suite.toml, resolved.json and environment.json.

    On resume, environment.json keeps the first run's content and gains this
    start time at the end of its ``resumed_at`` list.
    """
    (run_dir / "suite.toml").write_text(suite.text, encoding="utf-8")
    (run_dir / "resolved.json").write_text(json.dumps(resolution.to_json(), indent=1) + "\n", encoding="utf-8")
    environment = collect_environment(workers=workers, threads_per_worker=threads, command=command)
    environment_path = run_dir / "environment.json"
    if resume and environment_path.exists():
        previous: Any = None
        try:
            previous = json.loads(environment_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            logger.warning("could not read the previous %s; overwriting it", environment_path)
        if isinstance(previous, dict):
            resumed_at = previous.get("resumed_at")
            if not isinstance(resumed_at, list):
                resumed_at = []
            previous["resumed_at"] = [*resumed_at, environment["started_at"]]
            environment = previous
    environment_path.write_text(json.dumps(environment, indent=1) + "\n", encoding="utf-8")


@dataclass
class _Worker:
    process: multiprocessing.process.BaseProcess
    conn: Connection
    threads: int | None = None
    cell: dict[str, Any] | None = None
    sent: float = 0.0
    started: float | None = None
    deadline: float | None = None


class _Pool:
    """The parent side: hands out cells, enforces time limits and writes records."""

    def __init__(
        self,
        size: int,
        threads: int,
        log_level: int | None,
        writer: RecordWriter,
        counts: Counter[str],
        notify: ProgressCallback,
    ) -> None:
        self.context = multiprocessing.get_context("spawn")
        self.size = size
        self.threads = threads
        self.log_level = log_level
        self.writer = writer
        self.counts = counts
        self.notify = notify
        self.workers: list[_Worker] = []

    def run(self, cells: list[dict[str, Any]]) -> None:
        pending = deque(cells)
        try:
            self.workers = [self._start_worker() for _ in range(self.size)]
            while pending or any(worker.cell is not None for worker in self.workers):
                for worker in self.workers:
                    if worker.cell is None and pending:
                        self._hand_out(worker, pending.popleft())
                self._wait()
                checked = [self._check(worker, bool(pending)) for worker in self.workers]
                self.workers = [worker for worker in checked if worker is not None]
                if pending and not self.workers:
                    self.workers.append(self._start_worker())
        finally:
            self._stop_all()

    def _start_worker(self) -> _Worker:
        parent_end, child_end = self.context.Pipe(duplex=True)
        process = self.context.Process(
            target=_worker_main,
            args=(child_end, self.threads, self.log_level),
            name="otbench-worker",
            daemon=True,
        )
        process.start()
        child_end.close()
        logger.debug("started worker pid %s", process.pid)
        return _Worker(process=process, conn=parent_end)

    def _hand_out(self, worker: _Worker, cell: dict[str, Any]) -> None:
        worker.cell = cell
        worker.sent = time.monotonic()
        worker.started = None
        worker.deadline = worker.sent + _STARTUP_ALLOWANCE + float(cell["time_limit"])
        try:
            worker.conn.send(cell)
        except (OSError, ValueError):
            # The worker is gone; _check records the error and replaces it.
            logger.debug("could not send cell %s to worker pid %s", cell["cell_id"], worker.process.pid)

    def _wait(self) -> None:
        deadlines = [w.deadline for w in self.workers if w.cell is not None and w.deadline is not None]
        timeout = max(0.0, min(deadlines) - time.monotonic()) if deadlines else None
        objects: list[Any] = [w.conn for w in self.workers] + [w.process.sentinel for w in self.workers]
        wait(objects, timeout)

    def _check(self, worker: _Worker, more_cells: bool) -> _Worker | None:
        """Read the worker's messages, then handle its death or time-out.

        Returns:
            The worker to keep in the pool: this one, a fresh one in place of a
            killed or dead one, or None when a dead worker is not needed any more.
        """
        alive = self._receive(worker)
        now = time.monotonic()
        if alive and worker.cell is not None and worker.deadline is not None and now >= worker.deadline:
            cell = worker.cell
            elapsed = now - (worker.started if worker.started is not None else worker.sent)
            self._kill(worker)
            self._finish(
                worker,
                make_record(
                    cell,
                    status="timeout",
                    message=f"the cell timed out after its time limit of {cell['time_limit']:g} s; "
                    f"the worker was killed",
                    wall_seconds=max(elapsed, 0.0),
                    result=None,
                ),
            )
            return self._replace(worker, "timeout")
        if alive:
            return worker
        exit_code = worker.process.exitcode
        if worker.cell is not None:
            cell = worker.cell
            elapsed = now - (worker.started if worker.started is not None else worker.sent)
            self._finish(
                worker,
                make_record(
                    cell,
                    status="error",
                    message=f"WorkerDied: the worker process exited with code {exit_code} "
                    f"while running the cell (a negative code is the signal number)",
                    wall_seconds=elapsed,
                    result=None,
                ),
            )
        logger.warning("worker pid %s exited with code %s", worker.process.pid, exit_code)
        if more_cells:
            return self._replace(worker, f"exit code {exit_code}")
        worker.conn.close()
        return None

    def _receive(self, worker: _Worker) -> bool:
        """Process the worker's pending messages; return False if it is gone."""
        if not worker.process.is_alive() and not _poll(worker.conn):
            worker.process.join(timeout=1.0)
            return False
        while _poll(worker.conn):
            try:
                kind, payload = worker.conn.recv()
            except (EOFError, OSError, ValueError, TypeError):
                worker.process.join(timeout=1.0)
                return worker.process.is_alive()
            if kind == "ready":
                worker.threads = payload["threads"]
            elif kind == "started" and worker.cell is not None:
                worker.started = time.monotonic()
                worker.deadline = worker.started + float(worker.cell["time_limit"])
                self.notify("cell_started", {"cell_id": payload, "pid": worker.process.pid})
            elif kind == "done":
                self._finish(worker, payload)
        return True

    def _finish(self, worker: _Worker, record: dict[str, Any]) -> None:
        self.writer.write(record)
        self.counts[record["status"]] += 1
        worker.cell = None
        worker.started = None
        worker.deadline = None
        if record["status"] not in ("ok", "not_converged"):
            logger.warning("cell %s: %s: %s", record["cell_id"], record["status"], record["message"])
        self.notify("cell_finished", {"record": record, "counts": dict(self.counts)})

    def _replace(self, worker: _Worker, reason: str) -> _Worker:
        worker.conn.close()
        fresh = self._start_worker()
        self.notify("worker_restarted", {"old_pid": worker.process.pid, "new_pid": fresh.process.pid, "reason": reason})
        return fresh

    def _kill(self, worker: _Worker) -> None:
        if worker.process.is_alive():
            worker.process.kill()
        worker.process.join(timeout=_STOP_GRACE)

    def _stop_all(self) -> None:
        for worker in self.workers:
            try:
                if worker.cell is None:
                    worker.conn.send(None)
            except (OSError, ValueError):
                pass
        deadline = time.monotonic() + _STOP_GRACE
        for worker in self.workers:
            if worker.cell is None:
                worker.process.join(timeout=max(0.0, deadline - time.monotonic()))
            self._kill(worker)
            worker.conn.close()


def _poll(conn: Connection) -> bool:
    try:
        return conn.poll()
    except (OSError, ValueError, EOFError):
        return False


def _worker_main(conn: Connection, threads: int, log_level: int | None) -> None:
    """Run cells received on ``conn`` until it closes or sends None."""
    # The parent handles Ctrl-C and stops the workers itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if log_level is not None:
        logging.basicConfig(level=log_level, format=f"%(asctime)s worker {os.getpid()} %(name)s: %(message)s")
    import torch

    torch.set_num_threads(threads)
    _preload()
    from .tasks import run_cell

    conn.send(("ready", {"pid": os.getpid(), "threads": torch.get_num_threads()}))
    while True:
        try:
            cell = conn.recv()
        except (EOFError, OSError):
            return
        if cell is None:
            return
        conn.send(("started", cell["cell_id"]))
        record = run_cell(cell)
        try:
            conn.send(("done", record))
        except (OSError, ValueError):
            return


def _preload() -> None:
    """Import otbench's heavy modules before the first cell, so its wall time excludes them."""
    for module in ("otbench", "otbench.problems", "otbench.data", "otbench.train"):
        try:
            __import__(module)
        except ImportError:
            logger.debug("could not preload %s", module, exc_info=True)
