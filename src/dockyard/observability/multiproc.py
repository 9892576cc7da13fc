"""Prometheus multiprocess mode: each worker writes its values to files, the debug server sums.

prometheus-client chooses file-backed values when it is imported with PROMETHEUS_MULTIPROC_DIR
set, so the supervisor sets it before spawning workers (they start fresh interpreters) and
never records request metrics itself. A fresh directory per start keeps a previous run's
counters out; a dead worker's live gauges are dropped, its counters stay in the sums.
"""

from __future__ import annotations

import os
import shutil
import tempfile

ENVIRONMENT_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"


def prepare() -> str:
    directory = tempfile.mkdtemp(prefix="dockyard-metrics-")
    os.environ[ENVIRONMENT_VARIABLE] = directory
    return directory


def worker_exited(directory: str, pid: int) -> None:
    # Imported here: the supervisor, which calls this, otherwise never loads prometheus-client.
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid, directory)  # type: ignore[no-untyped-call]


def remove(directory: str) -> None:
    os.environ.pop(ENVIRONMENT_VARIABLE, None)
    shutil.rmtree(directory, ignore_errors=True)
