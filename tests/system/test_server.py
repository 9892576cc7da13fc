"""`dockyard serve` with several workers: a lean supervisor that keeps the workers running.

The supervisor lives as long as the server, so what it loads is paid for all that time: it
must leave the registry (and its libraries) to the workers.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from dockyard.server.supervisor import configured_log_level
from tests.authkit import auth_config, basic, write_htpasswd
from tests.backends import Services
from tests.server import RunningRegistry, deep_merge, running_registry
from tests.system.api.client import Client

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
                      timeout: float = 60.0) -> list[int]:
    """Children of `pid` (not in `exclude`) once `count` of them have loaded the registry."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        workers = [child for child in _children(pid) if child not in exclude
                   and _libraries(child) == set(REGISTRY_LIBRARIES)]
        if len(workers) >= count:
            return workers
        time.sleep(0.1)
    raise AssertionError(f"{count} workers did not start")


def _wait_until_serving(server: RunningRegistry, listeners: int, timeout: float = 60.0) -> None:
    """Until `listeners` workers have logged that they serve: killing one before that is a
    failed start, which stops the whole server by design."""
    deadline = time.monotonic() + timeout
    while server.log_text().count("listening on") < listeners:
        assert time.monotonic() < deadline, f"{listeners} listeners did not start"
        time.sleep(0.1)


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
    _wait_until_serving(two_workers, 2)
    os.kill(first, signal.SIGKILL)
    (replacement,) = _wait_for_workers(supervisor, 1, exclude=frozenset({first, second}))
    assert sorted(_children(supervisor)) == sorted([second, replacement])
    assert f"worker {first} exited with -9; starting another" in two_workers.log_text()
    for _ in range(20):  # new connections: both workers answer
        response = requests.get(two_workers.url + "/v2/", timeout=10,
                                headers={"Connection": "close"})
        assert response.status_code == 200


def test_a_worker_started_after_a_reload_serves_the_reloaded_configuration(
        tmp_path: Path) -> None:
    """The supervisor hands new workers the configuration it started with; one started after
    a SIGHUP must still end up with the file as it is now (here: another htpasswd file)."""
    first = write_htpasswd(tmp_path / "first", {"alice": "a-secret"})
    second = write_htpasswd(tmp_path / "second", {"bob": "b-secret"})
    workdir = tmp_path / "server"
    workdir.mkdir()
    with running_registry(workdir, auth_config(first), workers=2) as server:
        assert server.process is not None
        first_worker, second_worker = _wait_for_workers(server.process.pid, 2)
        _wait_until_serving(server, 2)
        server.config_path.write_text(yaml.safe_dump(deep_merge(
            server.config, auth_config(second))))
        os.kill(server.process.pid, signal.SIGHUP)
        for _ in range(20):  # new connections: both workers answer
            _wait_for_status(server, basic("bob", "b-secret"), 200)
        os.kill(first_worker, signal.SIGKILL)
        _wait_for_workers(server.process.pid, 1, exclude=frozenset({first_worker,
                                                                    second_worker}))
        _wait_until_serving(server, 3)
        for _ in range(20):
            _wait_for_status(server, basic("bob", "b-secret"), 200)
        for _ in range(4):  # more failed logins than this are answered 429
            assert requests.get(server.url + "/v2/", headers={
                **basic("alice", "a-secret"), "Connection": "close"}, timeout=10,
            ).status_code == 401


def _wait_for_status(server: RunningRegistry, headers: dict[str, str], status: int,
                     timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while (answer := requests.get(server.url + "/v2/", headers={**headers, "Connection": "close"},
                                  timeout=10).status_code) != status:
        assert time.monotonic() < deadline, f"still {answer}, not {status}"
        time.sleep(0.1)


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


# --- mistakes at start-up stop the server at once, with one line naming what is wrong ----------

START_LIMIT = 60.0
"""Seconds within which a server that cannot start must have exited (it used to loop)."""


def _serve(tmp_path: Path, config: dict[str, Any], workers: int = 2
           ) -> tuple[int, str, float]:
    """Run `dockyard serve` on a config that must fail: exit status, output, seconds taken."""
    server = RunningRegistry(tmp_path, config, workers)  # writes the config; not started
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "dockyard", "serve", "--config", str(server.config_path),
         "--workers", str(workers)],
        capture_output=True, text=True, timeout=START_LIMIT, check=False)
    return result.returncode, result.stdout + result.stderr, time.monotonic() - started


def test_a_second_server_on_a_served_address_stops_at_once(
        two_workers: RunningRegistry, tmp_path: Path) -> None:
    Client(two_workers.url).push_image("only/here", "v1")
    status, output, _ = _serve(tmp_path, {"http": {"addr": two_workers.host}})
    assert status == 1
    assert f"dockyard: http.addr: {two_workers.host} is already in use" in output, output
    for _ in range(20):  # every new connection still reaches the first server
        response = requests.get(two_workers.url + "/v2/_catalog", timeout=10,
                                headers={"Connection": "close"})
        assert response.json()["repositories"] == ["only/here"]


def test_a_port_held_by_another_program_stops_serve(tmp_path: Path) -> None:
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        host = f"127.0.0.1:{other.getsockname()[1]}"
        status, output, _ = _serve(tmp_path, {"http": {"addr": host}}, workers=1)
    assert status == 1
    assert f"http.addr: {host} is already in use" in output, output


def test_two_servers_on_one_sqlite_database_are_refused(
        two_workers: RunningRegistry, tmp_path: Path) -> None:
    root = str(two_workers.root)
    status, output, _ = _serve(tmp_path, {"storage": {"filesystem": {"rootdirectory": root}}})
    assert status == 1
    database = two_workers.root.resolve() / "dockyard.db"
    assert f"dockyard: {database} is in use by another Dockyard server" in output, output
    assert requests.get(two_workers.url + "/v2/", timeout=10).status_code == 200


@pytest.mark.parametrize("workers", [1, 2])
def test_a_missing_tls_file_is_named(tmp_path: Path, workers: int) -> None:
    missing = tmp_path / "nowhere" / "cert.pem"
    config = {"http": {"tls": {"certificate": str(missing), "key": str(missing)}}}
    status, output, _ = _serve(tmp_path, config, workers)
    assert status == 1
    assert (f"dockyard: http.tls.certificate: cannot read {missing}: No such file or directory"
            in output), output
    assert "Traceback" not in output


@pytest.mark.parametrize("workers", [1, 2])
def test_an_unreadable_token_key_file_is_named(tmp_path: Path, workers: int) -> None:
    """Once found only where each worker builds the app: it restarted them forever."""
    bundle = tmp_path / "missing-bundle.pem"
    config = {"auth": {"token": {"realm": "https://auth.example/token", "service": "registry",
                                 "issuer": "auth.example", "rootcertbundle": str(bundle)}}}
    status, output, seconds = _serve(tmp_path, config, workers)
    assert status == 1
    assert seconds < START_LIMIT
    assert (f"dockyard: auth.token.rootcertbundle: cannot read root certificate bundle {bundle}"
            in output), output
    assert "Traceback" not in output


def test_a_worker_that_dies_before_serving_stops_the_supervisor() -> None:
    """What no start-up check foresaw: the supervisor stops instead of restarting forever.

    The workers here are handed a configuration they cannot read, so they die at once.
    """
    program = (
        "import sys\n"
        "from dockyard.server.supervisor import Plan, Supervisor\n"
        "plan = Plan(workers=2, config_path=None, config=b'not a pickle', log_level='info',\n"
        "            log_formatter='text', log_fields={}, drain_timeout=1.0, metrics=False,\n"
        "            debug=False)\n"
        "sys.exit(Supervisor(plan).run())\n")
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                            timeout=START_LIMIT, check=False)
    assert result.returncode == 1
    assert time.monotonic() - started < START_LIMIT
    assert "a worker could not start (exit status 1); stopping" in result.stderr
    assert "starting another" not in result.stderr


def test_workers_die_with_a_killed_supervisor(two_workers: RunningRegistry) -> None:
    assert two_workers.process is not None
    supervisor = two_workers.process.pid
    workers = _wait_for_workers(supervisor, 2)
    os.kill(supervisor, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while any(Path(f"/proc/{worker}").exists() for worker in workers):
        assert time.monotonic() < deadline, "workers outlived their supervisor"
        time.sleep(0.1)
    # The address and the database are free again: the next server starts where it stood.
    assert two_workers.stop() == -signal.SIGKILL
    two_workers.start(timeout=60)
    assert requests.get(two_workers.url + "/v2/", timeout=10).status_code == 200


def test_a_worker_that_keeps_dying_is_restarted_later_and_reported(
        two_workers: RunningRegistry) -> None:
    assert two_workers.process is not None
    supervisor = two_workers.process.pid
    known = set(_wait_for_workers(supervisor, 2))
    _wait_until_serving(two_workers, 2)
    victim = max(known)
    delays = []
    for listeners in (3, 4, 5):
        os.kill(victim, signal.SIGKILL)
        (replacement,) = _wait_for_workers(supervisor, 1, exclude=frozenset(known))
        known.add(replacement)
        _wait_until_serving(two_workers, listeners)
        line = next(line for line in two_workers.log_text().splitlines()
                    if f"worker {victim} exited with -9" in line)
        delays.append(line.split("starting another in ")[1].split(" ")[0])
        victim = replacement  # the same worker place each time
    assert delays == ["1", "2", "4"]
    assert "(crash loop: 3 quick exits in a row)" in two_workers.log_text()
    assert requests.get(two_workers.url + "/v2/", timeout=10).status_code == 200


def test_a_data_directory_that_takes_no_files_is_named(tmp_path: Path) -> None:
    occupied = tmp_path / "a-file"
    occupied.write_text("not a directory")
    config = {"storage": {"filesystem": {"rootdirectory": str(occupied)}}}
    status, output, _ = _serve(tmp_path, config, workers=1)
    assert status == 1
    assert f"dockyard: storage.filesystem.rootdirectory: cannot write to {occupied}" in output
    assert "Traceback" not in output


def test_a_missing_bucket_stops_serve(tmp_path: Path, services: Services) -> None:
    """It used to start, report ready, and answer the first upload with a 500."""
    config = deep_merge(services.config_for("s3"), {"storage": {"s3": {"bucket": "not-made"}}})
    status, output, _ = _serve(tmp_path, config, workers=1)
    assert status == 1
    assert (f"dockyard: storage.s3: bucket 'not-made' does not exist at "
            f"{services.moto.endpoint}") in output, output
    assert "Traceback" not in output
