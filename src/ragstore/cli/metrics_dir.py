"""The folder of one `ragstore serve` run's metric files (prometheus-client's multiprocess mode).

This module imports nothing that imports prometheus-client: the library reads PROMETHEUS_MULTIPROC_DIR once,
when it is first imported, so `serve` sets it here before the app's modules load (ops/metrics.py).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

__all__ = ["MULTIPROCESS_ENV", "prepare_multiprocess_dir"]

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"
PREFIX = "ragstore-metrics-"


def prepare_multiprocess_dir() -> Path:
    """A new, empty folder for this run's metric files, set in the environment for the server's processes
    (which import prometheus-client after this). One folder per run: two servers on one data directory must
    not add up each other's counts, nor a run count the one before it. It lies in the temporary directory,
    not the data directory, which may be read-only on PostgreSQL. `serve` removes it when it returns; uvicorn
    ends a process stopped by a signal with that signal, so the folders of runs whose process is gone are
    removed here, by the next run."""
    for old in Path(tempfile.gettempdir()).glob(f"{PREFIX}*"):
        pid = old.name[len(PREFIX) :].split("-", 1)[0]
        if old.is_dir() and pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(old, ignore_errors=True)
    mine = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-"))
    os.environ[MULTIPROCESS_ENV] = str(mine)
    return mine


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True
