"""`dockyard serve` with several workers: a lean supervisor that keeps the workers running.

The supervisor lives as long as the server, so what it loads is paid for all that time: it
must leave the registry (and its libraries) to the workers.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import yaml

from dockyard.server.supervisor import configured_log_level
from tests.server import RunningRegistry, running_registry

REGISTRY_LIBRARIES = ("aiohttp", "pydantic_core", "sqlalchemy")
"""Packages with native extensions the workers load: they show in /proc/<pid>/maps."""
AUTH_LIBRARIES = ("cryptography", "bcrypt")
"""Loaded by a worker only when auth is configured."""

pytestmark = pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs Linux /proc")


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(stat.parent.name))
    return found


def _libraries(pid: int, names: tuple[str, ...] = REGISTRY_LIBRARIES) -> set[str]:
    """Which of `names` the process has mapped."""
    maps = Path(f"/proc/{pid}/maps").read_text()
    return {name for name in names if f"/{name}/" in maps}


def _wait_for_workers(pid: int, count: int, exclude: frozenset[int] = frozenset(),
                      timeout: float = 30.0) -> list[int]:
    """Children of `pid` (not in `exclude`) once `count` of them have loaded the registry."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        workers = [child for child in _children(pid) if child not in exclude
                   and _libraries(child) == set(REGISTRY_LIBRARIES)]
        if len(workers) >= count:
            return workers
        time.sleep(0.1)
    raise AssertionError(f"{count} workers did not start")


@pytest.fixture
def two_workers(tmp_path: Path) -> Iterator[RunningRegistry]:
    with running_registry(tmp_path, workers=2) as server:
        yield server


def test_the_supervisor_leaves_the_registry_to_the_workers(
        two_workers: RunningRegistry) -> None:
    assert two_workers.process is not None
    supervisor = two_workers.process.pid
    workers = _wait_for_workers(supervisor, 2)
    assert _libraries(supervisor, REGISTRY_LIBRARIES + AUTH_LIBRARIES) == set()
    assert all(_libraries(worker, AUTH_LIBRARIES) == set() for worker in workers)


def test_the_supervisor_is_still_found_by_its_command(two_workers: RunningRegistry) -> None:
    """Operators find the server by `dockyard serve` (ps, pkill -f) after the hand-over too."""
    assert two_workers.process is not None
    supervisor = two_workers.process.pid
    _wait_for_workers(supervisor, 2)
    command = Path(f"/proc/{supervisor}/cmdline").read_bytes().replace(b"\0", b" ")
    assert b"dockyard.server.supervisor" in command
    assert b"dockyard serve" in command


def test_a_killed_worker_is_replaced(two_workers: RunningRegistry) -> None:
    assert two_workers.process is not None
    supervisor = two_workers.process.pid
    first, second = _wait_for_workers(supervisor, 2)
    os.kill(first, signal.SIGKILL)
    (replacement,) = _wait_for_workers(supervisor, 1, exclude=frozenset({first, second}))
    assert sorted(_children(supervisor)) == sorted([second, replacement])
    assert f"worker {first} exited with -9; starting another" in two_workers.log_text()
    for _ in range(20):  # new connections: both workers answer
        response = requests.get(two_workers.url + "/v2/", timeout=10,
                                headers={"Connection": "close"})
        assert response.status_code == 200


def test_an_invalid_configuration_stops_serve_before_any_worker(tmp_path: Path) -> None:
    path = tmp_path / "config.yml"
    path.write_text(yaml.safe_dump({
        "version": 0.1, "http": {"adr": ":5000"},
        "storage": {"filesystem": {"rootdirectory": str(tmp_path)}}}))
    result = subprocess.run(
        [sys.executable, "-m", "dockyard", "serve", "--config", str(path), "--workers", "2"],
        capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2
    assert result.stderr.startswith("dockyard: invalid configuration:\n")
    assert "http.adr: unknown key" in result.stderr


def test_configured_log_level_reads_the_file_as_it_is_now(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "config.yml"
    path.write_text("version: 0.1\nlog: {level: debug}\n")
    assert configured_log_level(str(path)) == "debug"
    monkeypatch.setenv("REGISTRY_LOG_LEVEL", "error")  # overrides apply, as in the workers
    assert configured_log_level(str(path)) == "error"
    monkeypatch.delenv("REGISTRY_LOG_LEVEL")
    path.write_text("version: 0.1\nlog: {level: loud}\n")
    assert configured_log_level(str(path)) is None
