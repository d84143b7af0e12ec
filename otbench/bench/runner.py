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
from .suite import Suite

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
            only the cells missing from them.
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
            or parameters they reject.
        RunFolderError: ``out_dir`` already contains records and ``resume`` is False.
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
    if not resume and records_path.exists() and records_path.stat().st_size > 0:
        raise RunFolderError(
            f"{run_dir} already contains records ({records_path}); pass --resume to "
            f"finish that run, or choose another output folder"
        )

    resolution = resolve_suite(suite)
    run_dir.mkdir(parents=True, exist_ok=True)
    finished = {record["cell_id"] for record in read_records(records_path, repair=True)} if resume else set()
    _write_run_files(run_dir, suite, resolution, workers, threads, command, resume)

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
        with RecordWriter(records_path) as writer:
            pool = _Pool(min(workers, len(pending)), threads, log_level, writer, summary.counts, notify)
            pool.run(pending)
    return summary


def _write_run_files(
    run_dir: Path,
    suite: Suite,
    resolution: Resolution,
    workers: int,
    threads: int,
    command: Sequence[str] | None,
    resume: bool,
) -> None:
    (run_dir / "suite.toml").write_text(suite.text, encoding="utf-8")
    (run_dir / "resolved.json").write_text(json.dumps(resolution.to_json(), indent=1) + "\n", encoding="utf-8")
    environment = collect_environment(workers=workers, threads_per_worker=threads, command=command)
    environment_path = run_dir / "environment.json"
    if resume and environment_path.exists():
        try:
            previous = json.loads(environment_path.read_text(encoding="utf-8"))
            environment["first_started_at"] = previous.get("first_started_at", previous.get("started_at"))
        except (OSError, ValueError, AttributeError):
            logger.warning("could not read the previous %s; overwriting it", environment_path)
        environment["resumed"] = True
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
