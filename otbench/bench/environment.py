"""The machine and software a run used, saved as ``environment.json``."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from collections.abc import Sequence
from datetime import datetime, timezone
from importlib import metadata
from typing import Any

__all__ = ["PACKAGES", "collect_environment", "cpu_model", "git_commit"]

# Installed distribution names (as importlib.metadata reads them) whose versions each run records.
PACKAGES = ("otbench", "torch", "numpy", "scipy", "POT", "geomloss", "pandas", "seaborn", "scikit-learn")


def collect_environment(
    *,
    workers: int,
    threads_per_worker: int,
    command: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Describe the Python, packages, CPU and git checkout of this process.

    Args:
        workers: worker processes of the run.
        threads_per_worker: torch threads each worker sets.
        command: the command line that started the run; ``sys.argv`` if None.
    """
    versions: dict[str, str | None] = {}
    for package in PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "workers": workers,
        "threads_per_worker": threads_per_worker,
        "packages": versions,
        "git_commit": git_commit(),
        "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": list(sys.argv if command is None else command),
    }


def cpu_model() -> str | None:
    """Return the CPU model name from ``/proc/cpuinfo``, or ``platform.processor()`` elsewhere."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def git_commit() -> str | None:
    """Return the commit of the git checkout in the working directory, or None outside one.

    A ``-dirty`` suffix marks uncommitted changes to tracked files.
    """
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        changes = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{commit}-dirty" if changes else commit
