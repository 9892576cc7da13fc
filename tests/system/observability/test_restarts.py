"""Graceful restarts: SIGTERM drains in-flight requests, SIGHUP applies what can change live."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import bcrypt
import pytest
import requests
import yaml

from tests.system.api.client import Client, digest_of, random_bytes, repo_name
from tests.system.observability.conftest import ObservedRegistry, json_lines, wait_for

CHUNK = 1 << 20


def _refuses_connections(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return False
    except OSError:
        return True


@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_lets_a_large_upload_finish(serve: Callable[..., ObservedRegistry],
                                            workers: int) -> None:
    server = serve({"http": {"draintimeout": "30s"}}, workers=workers)
    assert server.process is not None
    client = Client(server.url)
    name = repo_name()
    data = random_bytes(48 * CHUNK)
    location = client.upload_url(name)
    sending = threading.Event()
    result: list[requests.Response | BaseException] = []

    def slow_body() -> Iterator[bytes]:
        for offset in range(0, len(data), CHUNK):
            if offset == 8 * CHUNK:
                sending.set()
            yield data[offset:offset + CHUNK]
            time.sleep(0.05)

    def upload() -> None:
        try:
            result.append(requests.patch(location, data=slow_body(), timeout=60,
                                         headers={"Content-Type": "application/octet-stream"}))
        except BaseException as exc:
            result.append(exc)

    thread = threading.Thread(target=upload)
    thread.start()
    assert sending.wait(20)
    os.kill(server.process.pid, signal.SIGTERM)
    wait_for(lambda: _refuses_connections(server.port), timeout=10,
             message="the listener to close")
    thread.join(60)
    response = result[0]
    assert isinstance(response, requests.Response), response
    assert response.status_code == 202, response.text
    assert response.headers["Range"] == f"0-{len(data) - 1}"
    assert server.process.wait(30) == 0

    # The session outlives the process: the next server completes it.
    server.process = None
    server.workers = 1  # quicker to start; any process may continue the session
    server.start()
    finished = client.finish_upload(client.follow(response.headers["Location"]), digest_of(data))
    assert finished.status_code == 201, finished.text
    client.close()


def _htpasswd(path: Path, user: str, password: str) -> None:
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()
    path.write_text(f"{user}:{hashed}\n")


def _hangup(server: ObservedRegistry, done_before: int, expected: int) -> None:
    assert server.process is not None
    os.kill(server.process.pid, signal.SIGHUP)
    wait_for(lambda: server.log_text().count("reload: done") >= done_before + expected,
             message="reload to finish")


@pytest.mark.parametrize("workers", [1, 2])
def test_sighup_reloads_log_level_and_htpasswd(serve: Callable[..., ObservedRegistry],
                                               tmp_path: Path, workers: int) -> None:
    first, second = tmp_path / "first.htpasswd", tmp_path / "second.htpasswd"
    _htpasswd(first, "alice", "wonderland")
    _htpasswd(second, "bob", "builder")
    server = serve({"log": {"formatter": "json", "level": "info"},
                    "auth": {"htpasswd": {"path": str(first)}}}, workers=workers)

    def status(user: str, password: str) -> int:
        return requests.get(server.url + "/v2/", auth=(user, password), timeout=10).status_code

    wait_for(lambda: status("alice", "wonderland") == 200, message="alice to log in")
    assert status("bob", "builder") == 401

    config = yaml.safe_load(server.config_path.read_text())
    config["log"]["level"] = "debug"
    config["auth"]["htpasswd"]["path"] = str(second)
    config["http"]["relativeurls"] = True  # cannot change live: must be reported
    server.config_path.write_text(yaml.safe_dump(config))
    _hangup(server, 0, workers)

    assert status("bob", "builder") == 200
    assert status("alice", "wonderland") == 401
    lines = json_lines(server)
    messages = [line.get("msg", "") for line in lines]
    assert sum("reload: debug logging is on" in m for m in messages) == workers
    restart = [m for m in messages if "need a restart" in m]
    assert restart and all("http.relativeurls" in m and "log.level" not in m for m in restart)

    server.config_path.write_text("version: 0.1\nlog: {level: loud}\n")
    _hangup(server, workers, workers)
    assert "configuration not applied" in server.log_text()
    assert "log.level" in server.log_text()
    assert status("bob", "builder") == 200
    for line in json_lines(server):  # nothing secret reached the log
        assert "builder" not in str(line) and "wonderland" not in str(line)
