"""Registry targets: how to configure, start, watch and stop each server under test.

A target is a name, a config writer and a command line. Adding a registry to the
comparison means adding one ``TargetSpec`` factory; everything else is shared.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bench.httpclient import Connection, HttpError

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
START_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0
RSS_INTERVAL = 0.1
TREE_REFRESH = 10  # samples between rescans of /proc for new child processes


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class TargetSpec:
    """What it takes to run one registry implementation."""

    kind: str  # "go" or "dockyard": what the table calls it
    config: Callable[[Path, int], dict[str, Any]]  # (data dir, port) -> config document
    command: Callable[[Path], list[str]]  # config path -> argv
    env: dict[str, str] | None = None


def go_reference(binary: str = "/usr/bin/docker-registry") -> TargetSpec:
    """CNCF Distribution as packaged by Debian (docker-registry 2.8.2)."""

    def config(data: Path, port: int) -> dict[str, Any]:
        return {
            "version": 0.1,
            "log": {"level": "error", "accesslog": {"disabled": True}},
            "storage": {
                "cache": {"blobdescriptor": "inmemory"},
                "filesystem": {"rootdirectory": str(data)},
                "delete": {"enabled": True},
            },
            "http": {"addr": f"127.0.0.1:{port}"},
        }

    return TargetSpec("go", config, lambda path: [binary, "serve", str(path)])


def dockyard(python: str, workers: int | None = None) -> TargetSpec:
    """Dockyard from this checkout, started the way an operator would."""

    def config(data: Path, port: int) -> dict[str, Any]:
        return {
            "version": 0.1,
            "log": {"level": "error", "accesslog": {"disabled": True}},
            "storage": {"filesystem": {"rootdirectory": str(data)}, "delete": {"enabled": True}},
            "http": {"addr": f"127.0.0.1:{port}"},
        }

    def command(path: Path) -> list[str]:
        argv = [python, "-m", "dockyard", "serve", "--config", str(path)]
        if workers is not None:
            argv += ["--workers", str(workers)]
        return argv

    return TargetSpec("dockyard", config, command)


def wait_or_kill(process: subprocess.Popen[Any], timeout: float = 5.0) -> None:
    """Wait for a process told to stop; kill it if it does not within ``timeout``."""
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout)


# ---------------------------------------------------------------- /proc accounting


def _stat_fields(pid: int | str) -> list[bytes] | None:
    """/proc/<pid>/stat after the command name (field 3 on, 1-based), or None if gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat = handle.read()
    except OSError:
        return None
    return stat[stat.rfind(b")") + 2 :].split()


def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(entry.name)
        if fields is not None:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    return children


def process_tree(root: int) -> list[int]:
    """``root`` and all its descendants alive right now."""
    children = _children_map()
    tree: list[int] = []
    todo = [root]
    while todo and len(tree) < 10_000:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def tree_rss_bytes(root: int, pids: list[int] | None = None) -> int:
    """Resident set size summed over a process tree (shared pages count once per process)."""
    total = 0
    for pid in pids if pids is not None else process_tree(root):
        try:
            with open(f"/proc/{pid}/statm", "rb") as handle:
                total += int(handle.read().split()[1]) * PAGE_SIZE
        except (OSError, IndexError, ValueError):
            continue
    return total


def tree_pss_bytes(root: int, pids: list[int] | None = None) -> int:
    """Proportional set size summed over a process tree: a page shared by N processes counts
    1/N in each, so shared libraries and shared file pages count once in the sum."""
    total = 0
    for pid in pids if pids is not None else process_tree(root):
        try:
            with open(f"/proc/{pid}/smaps_rollup", "rb") as handle:
                for line in handle:
                    if line.startswith(b"Pss:"):
                        total += int(line.split()[1]) * 1024
                        break
        except (OSError, IndexError, ValueError):
            continue
    return total


def tree_cpu_seconds(root: int) -> float:
    """User+system CPU of a process tree, including children it has already reaped."""
    ticks = 0
    for pid in process_tree(root):
        fields = _stat_fields(pid)
        if fields is None:
            continue
        # utime, stime, cutime, cstime are fields 14-17 of stat (1-based), 11-14 here.
        ticks += sum(int(value) for value in fields[11:15])
    return ticks / CLOCK_TICKS


class RssSampler:
    """Samples a process tree's RSS (and PSS) every ``RSS_INTERVAL`` seconds in a thread."""

    def __init__(self, root: int) -> None:
        self.root = root
        self.peak = 0
        self.window_peak = 0
        self.pss = 0  # the latest sample's PSS
        self.pss_peak = 0
        self.pss_window_peak = 0
        self.samples = 0
        self._pids: list[int] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"rss-{root}")

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(RSS_INTERVAL):
            self.sample()

    def sample(self) -> int:
        if self.samples % TREE_REFRESH == 0:
            self._pids = process_tree(self.root)
        rss = tree_rss_bytes(self.root, self._pids)
        pss = tree_pss_bytes(self.root, self._pids)
        with self._lock:
            self.samples += 1
            self.peak = max(self.peak, rss)
            self.window_peak = max(self.window_peak, rss)
            self.pss = pss
            self.pss_peak = max(self.pss_peak, pss)
            self.pss_window_peak = max(self.pss_window_peak, pss)
        return rss

    def take_window(self) -> int:
        """The peak since the last call, then start a new window."""
        with self._lock:
            peak, self.window_peak = self.window_peak, 0
        return peak

    def take_pss_window(self) -> int:
        """The PSS peak since the last call, then start a new PSS window."""
        with self._lock:
            peak, self.pss_window_peak = self.pss_window_peak, 0
        return peak

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)


# ---------------------------------------------------------------- running targets


class RunningTarget:
    """One registry process on a loopback port with its own data directory."""

    def __init__(self, spec: TargetSpec, name: str, workdir: Path) -> None:
        self.spec = spec
        self.name = name
        self.workdir = workdir / name
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.host = "127.0.0.1"
        self.url = f"http://{self.host}:{self.port}"
        self.config_path = self.workdir / "config.yml"
        self.log_path = self.workdir / "server.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.rss: RssSampler | None = None
        self.idle_rss = 0

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def connection(self) -> Connection:
        return Connection(self.host, self.port)

    def start(self) -> None:
        config = self.spec.config(self.workdir / "data", self.port)
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.spec.command(self.config_path),
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env={**os.environ, **(self.spec.env or {})}, start_new_session=True,
                cwd=self.workdir,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited early:\n{self.log_tail()}")
            if self._ready():
                self.rss = RssSampler(self.pid)
                self.idle_rss = self.rss.sample()
                self.rss.start()
                return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.name} did not answer GET /v2/ within {START_TIMEOUT}s:\n"
                           f"{self.log_tail()}")

    def _ready(self) -> bool:
        try:
            with Connection(self.host, self.port, timeout=2) as conn:
                return conn.request("GET", "/v2/").status == 200
        except (OSError, HttpError):
            return False

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def cpu_seconds(self) -> float:
        return tree_cpu_seconds(self.pid) if self.alive() else 0.0

    def stop(self) -> None:
        """SIGTERM the target's process group, SIGKILL it if it lingers."""
        if self.rss is not None:
            self.rss.stop()
        if self.process is None:
            return
        group = self.process.pid  # start_new_session: the group id is the leader's pid
        with contextlib.suppress(ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(group, signal.SIGTERM)
            self.process.wait(STOP_TIMEOUT)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGKILL)  # leftover workers, if any
        if self.process.poll() is None:
            self.process.wait(5)
        self.process = None

    def remove_data(self) -> None:
        shutil.rmtree(self.workdir, ignore_errors=True)
