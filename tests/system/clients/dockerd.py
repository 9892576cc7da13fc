"""A Docker engine started for the tests, and the two clients that talk to it: docker and ctr.

The engine runs without systemd, iptables or a bridge, on vfs storage, with every path of
its own (data, exec root, socket, pid file, daemon.json) under one temporary directory, and
is stopped through its pid file. Its containerd (started by dockerd) is the one ctr uses.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from tests.server import require_tool, unavailable
from tests.system.clients.clients import run

START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0
CERTS_D = Path("/etc/docker/certs.d")
"""Where the engine looks for a registry's CA (`HOST:PORT/ca.crt`); it has no flag for it."""


class DockerDaemon:
    """dockerd in `directory`; `docker()` and `ctr()` run the clients against it."""

    def __init__(self, directory: Path, settings: dict[str, object] | None = None) -> None:
        """`settings` go into its daemon.json (e.g. `registry-mirrors`)."""
        self.directory = directory
        self.settings = dict(settings or {})
        self.dockerd = require_tool("dockerd")
        # The CLI of the engine's package (Debian: /usr/sbin/dockerd, /usr/bin/docker), not
        # whichever `docker` comes first on PATH.
        sbin = Path(self.dockerd).parent
        beside = [path for path in (sbin / "docker", sbin.parent / "bin" / "docker")
                  if path.exists()]
        self.cli = str(beside[0]) if beside else require_tool("docker")
        self.ctr_exe = require_tool("ctr")
        self.socket = directory / "docker.sock"
        self.pidfile = directory / "docker.pid"
        self.exec_root = directory / "exec"
        self.config_dir = directory / "client"
        self.config_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = directory / "dockerd.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def containerd_socket(self) -> Path:
        return self.exec_root / "containerd" / "containerd.sock"

    def env(self, config_dir: Path | None = None) -> dict[str, str]:
        """DOCKER_CONFIG keeps logins out of ~/.docker; each caller may bring its own."""
        return {**os.environ, "DOCKER_HOST": f"unix://{self.socket}",
                "DOCKER_CONFIG": str(config_dir or self.config_dir)}

    def start(self) -> None:
        config_file = self.directory / "daemon.json"
        # The engine's identity key, which would otherwise be written to /etc/docker/key.json.
        config_file.write_text(json.dumps(
            {"deprecated-key-path": str(self.directory / "key.json"), **self.settings}))
        command = [
            self.dockerd, "--storage-driver", "vfs", "--iptables=false", "--ip6tables=false",
            "--bridge=none", "--data-root", str(self.directory / "data"),
            "--exec-root", str(self.exec_root), "--host", f"unix://{self.socket}",
            "--pidfile", str(self.pidfile), "--config-file", str(config_file),
        ]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                unavailable(f"dockerd exited early:\n{self.log_tail()}", "CI must allow it")
            probe = subprocess.run([self.cli, "version"], capture_output=True, env=self.env(),
                                   timeout=10, check=False, stdin=subprocess.DEVNULL)
            if probe.returncode == 0 and self.containerd_socket.exists():
                return
            time.sleep(0.2)
        self.stop()
        unavailable(f"dockerd did not start:\n{self.log_tail()}", "CI must allow it")

    def log_tail(self, lines: int = 30) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        """SIGTERM to the pid in the pid file (dockerd stops its containerd itself)."""
        if self.process is None:
            return
        try:
            pid = int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            pid = self.process.pid
        if self.process.poll() is None:
            os.kill(pid, signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.kill(pid, signal.SIGKILL)
                self.process.wait(STOP_TIMEOUT)
        self.process = None

    def docker(self, *args: str, config_dir: Path | None = None, check: bool = True,
               stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
        return run([self.cli, *args], check, self.env(config_dir), stdin)

    def ctr(self, namespace: str, *args: str,
            check: bool = True) -> subprocess.CompletedProcess[bytes]:
        """ctr in its own namespace, so its images never mix with docker's ("moby")."""
        return run([self.ctr_exe, "--address", str(self.containerd_socket), "-n", namespace,
                    *args], check)


class TrustedCa:
    """The engine trusts a registry's CA from certs.d/HOST:PORT: written, then removed."""

    def __init__(self, host: str, ca: Path) -> None:
        self.path = CERTS_D / host
        self.path.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ca, self.path / "ca.crt")

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
