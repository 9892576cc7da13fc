"""Fixtures for end-to-end runs of real registry clients against a registry on loopback.

Set DOCKYARD_E2E_TARGET=HOST:PORT to aim the same tests at another registry (for
instance the reference implementation) instead of a Dockyard server started here.

The client matrix (every client x every auth mode) is reported at the end of the run.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.backends import selected_backends
from tests.server import require_tool
from tests.system.clients.clients import Buildah, Http, Podman, Skopeo, private_containers_conf
from tests.system.clients.dockerd import DockerDaemon, TrustedCa
from tests.system.clients.drivers import (
    BuildahDriver,
    CtrDriver,
    DockerDriver,
    Driver,
    OrasDriver,
    PodmanDriver,
    SkopeoDriver,
    insecure_registry,
)
from tests.system.clients.modes import MODES, Served, serve

CLIENTS = ("docker", "containerd", "skopeo", "buildah", "podman", "oras")


@dataclass(frozen=True)
class Target:
    """Where the clients push and pull: HOST:PORT and its base URL."""

    host: str
    url: str


@pytest.fixture(scope="session")
def target(request: pytest.FixtureRequest, backend: str) -> Target:
    """Named `backend`, so the clients run against each configuration (see tests/backends)."""
    external = os.environ.get("DOCKYARD_E2E_TARGET", "").strip()
    if external:
        if backend != selected_backends()[0]:
            pytest.skip("an external target is tested once")
        return Target(external, f"http://{external}")
    server = request.getfixturevalue("registry")
    return Target(server.host, server.url)


@pytest.fixture
def new_repo(request: pytest.FixtureRequest) -> Callable[..., str]:
    """Fresh repository names, so tests never see each other's tags."""
    prefix = request.node.originalname.removeprefix("test_").replace("_", "-")[:40]

    def make(label: str = "") -> str:
        suffix = f"-{label}" if label else ""
        return f"e2e/{prefix}{suffix}-{secrets.token_hex(4)}"

    return make


@pytest.fixture
def http(target: Target) -> Http:
    return Http(target.url)


@pytest.fixture
def skopeo() -> Skopeo:
    return Skopeo(require_tool("skopeo"))


@pytest.fixture
def short_dir() -> Iterator[Callable[[], Path]]:
    """Short directories under /tmp (podman's runroot must stay under 50 characters)."""
    made: list[Path] = []

    def make() -> Path:
        made.append(Path(tempfile.mkdtemp(prefix="pr", dir="/tmp")))
        return made[-1]

    yield make
    for path in made:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def containers_env(short_dir: Callable[[], Path]) -> dict[str, str]:
    return private_containers_conf(short_dir())


@pytest.fixture
def buildah(tmp_path: Path, short_dir: Callable[[], Path],
            containers_env: dict[str, str]) -> Iterator[Buildah]:
    """buildah with its own storage; its working containers are removed afterwards."""
    client = Buildah(require_tool("buildah"), tmp_path / "buildah-root", short_dir(),
                     containers_env)
    yield client
    client("rm", "--all", check=False)
    shutil.rmtree(tmp_path / "buildah-root", ignore_errors=True)


@pytest.fixture
def podman(tmp_path: Path, short_dir: Callable[[], Path],
           containers_env: dict[str, str]) -> Iterator[Podman]:
    """podman with its own storage, runroot and tmpdir."""
    client = Podman(require_tool("podman"), tmp_path / "podman-root", short_dir(), short_dir(),
                    containers_env)
    yield client
    shutil.rmtree(tmp_path / "podman-root", ignore_errors=True)


@pytest.fixture(scope="session")
def docker_daemon() -> Iterator[DockerDaemon]:
    """One engine for the session (its containerd serves ctr); stopped by its pid file."""
    directory = Path(tempfile.mkdtemp(prefix="dockerd-", dir="/tmp"))
    daemon = DockerDaemon(directory)
    try:
        daemon.start()
        yield daemon
    finally:  # also when it failed to start
        daemon.stop()
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="module", params=MODES)
def served(request: pytest.FixtureRequest,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """A registry in each auth mode in turn (anonymous, basic, bearer)."""
    yield from serve(request.param, tmp_path_factory.mktemp(f"served-{request.param}"))


@pytest.fixture
def served_repo(request: pytest.FixtureRequest) -> str:
    """A fresh repository under team/, where the matrix's users have their rights."""
    label = request.node.originalname.removeprefix("test_").replace("_", "-")[:30]
    return f"team/{label}-{secrets.token_hex(3)}"


@pytest.fixture
def docker_trust(served: Served) -> Iterator[None]:
    """The engine trusts the test CA for this registry while the test runs."""
    trusted = TrustedCa(served.host, served.ca) if served.tls else None
    yield
    if trusted is not None:
        trusted.remove()


@pytest.fixture(params=CLIENTS)
def client(request: pytest.FixtureRequest, served: Served, tmp_path: Path,
           short_dir: Callable[[], Path],
           containers_env: dict[str, str]) -> Callable[[str | None], Driver]:
    """A factory of sessions of one client, each acting as a user (None: anonymously)."""
    name: str = request.param
    sessions = iter(range(1000))

    def directory() -> Path:
        path = tmp_path / f"{name}-{next(sessions)}"
        path.mkdir()
        return path

    if name in ("docker", "containerd"):
        daemon: DockerDaemon = request.getfixturevalue("docker_daemon")
        if name == "docker":
            request.getfixturevalue("docker_trust")
            return lambda user: DockerDriver(daemon, served, user, directory())
        return lambda user: CtrDriver(daemon, served, user, directory())
    if name == "skopeo":
        return lambda user: SkopeoDriver(served, user, directory())
    if not served.tls:
        containers_env.update(insecure_registry(short_dir(), served.host))
    if name == "buildah":
        buildah: Buildah = request.getfixturevalue("buildah")
        return lambda user: BuildahDriver(buildah, served, user, directory())
    if name == "podman":
        podman: Podman = request.getfixturevalue("podman")
        return lambda user: PodmanDriver(podman, served, user, directory())
    return lambda user: OrasDriver(served, user, directory())


_MATRIX: dict[tuple[str, str], set[str]] = {}


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item,
                              call: pytest.CallInfo[None]) -> pytest.TestReport:
    """Record each matrix test's outcome under its (client, mode)."""
    report: pytest.TestReport = yield
    params = getattr(item, "callspec", None)
    chosen = params.params if params is not None else {}
    if "client" in chosen and "served" in chosen and (report.when == "call" or report.failed):
        outcome = "xfail" if hasattr(report, "wasxfail") else report.outcome
        _MATRIX.setdefault((chosen["client"], chosen["served"]), set()).add(outcome)
    return report


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """client x mode -> pass (every scenario passed), pass* (the rest passed, and one the
    client is known not to do failed as expected), FAIL (one failed), skip (none ran)."""
    if not _MATRIX:
        return
    terminalreporter.section("client matrix")
    terminalreporter.write_line(f"{'client':<12}" + "".join(f"{mode:<12}" for mode in MODES))
    for name in CLIENTS:
        cells = []
        for mode in MODES:
            outcomes = _MATRIX.get((name, mode), set())
            cells.append("FAIL" if "failed" in outcomes else
                         "pass*" if {"passed", "xfail"} <= outcomes else
                         "pass" if "passed" in outcomes else
                         "xfail" if "xfail" in outcomes else "skip" if outcomes else "-")
        terminalreporter.write_line(f"{name:<12}" + "".join(f"{cell:<12}" for cell in cells))
