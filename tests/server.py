"""Start real Dockyard servers for tests: a subprocess on a free loopback port."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

import pytest
import requests
import yaml

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_tool(name: str) -> str:
    """The path of a command the test needs; in CI its absence fails instead of skipping."""
    path = shutil.which(name)
    if path is None:
        unavailable(f"{name} is not installed", "CI must install it")
    return path


def unavailable(message: str, ci_remedy: str) -> NoReturn:
    """Skip the test, or fail it in CI, where everything the suite needs must be there."""
    if IN_CI:
        pytest.fail(f"{message} ({ci_remedy})")
    pytest.skip(message)


def require_service(name: str, host: str, port: int) -> None:
    """A network service the test needs; in CI its absence fails instead of skipping."""
    try:
        with socket.create_connection((host, port), timeout=2):
            return
    except OSError as exc:
        unavailable(f"{name} is not reachable at {host}:{port} ({exc})", "CI must start it")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def wait_until_ready(process: subprocess.Popen[bytes], ready: Callable[[], bool],
                     timeout: float, name: str, log: Callable[[], str]) -> bool:
    """Poll `ready` (a refused connection counts as not yet) until it holds: False when
    `timeout` passes first, RuntimeError with the log when the process exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited early:\n{log()}")
        try:
            if ready():
                return True
        except requests.ConnectionError:
            pass
        time.sleep(0.05)
    return False


def terminate(process: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL if the process is still there after `timeout`."""
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class RunningRegistry:
    """A Dockyard server process and the addresses to reach it."""

    def __init__(self, workdir: Path, config: dict[str, Any], workers: int = 1,
                 env: dict[str, str] | None = None) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.url = f"http://{self.host}"
        self.root = workdir / "data"
        self.workers = workers
        self.extra_env = env or {}
        base = {
            "version": 0.1,
            "log": {"level": "info", "formatter": "text"},
            "storage": {
                "filesystem": {"rootdirectory": str(self.root)},
                "delete": {"enabled": True},
            },
            "http": {"addr": self.host},
        }
        self.config = deep_merge(base, config)
        if self.config["http"].get("tls"):
            self.url = f"https://{self.host}"
        if "s3" in self.config["storage"]:
            del self.config["storage"]["filesystem"]  # one driver per registry
        self.config_path = workdir / "config.yml"
        self.config_path.write_text(yaml.safe_dump(self.config))
        self.log_path = workdir / "server.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> None:
        env = {**os.environ, **self.extra_env}
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "dockyard", "serve", "--config", str(self.config_path),
             "--workers", str(self.workers)],
            stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )
        if wait_until_ready(self.process, self._ready, timeout, "dockyard", self.log_text):
            return
        self.stop()
        raise RuntimeError(f"dockyard did not start:\n{self.log_text()}")

    def _ready(self) -> bool:
        """/v2/ answers (401 when auth is on); TLS is not verified by this probe only."""
        if (self.config["http"].get("tls") or {}).get("clientcas"):
            try:  # client certificates required: the port accepting connections will do
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return True
            except OSError:
                return False
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            response = requests.get(self.url + "/v2/", timeout=1, verify=False)
        return response.status_code in (200, 401)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            os.killpg(self.process.pid, sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        code = self.process.returncode
        self.process = None
        return code

    def restart(self) -> None:
        self.stop()
        self.start()


@contextmanager
def running_registry(workdir: Path, config: dict[str, Any] | None = None, workers: int = 1,
                     env: dict[str, str] | None = None) -> Iterator[RunningRegistry]:
    registry = RunningRegistry(workdir, config or {}, workers, env)
    registry.start()
    try:
        yield registry
    finally:
        registry.stop()
