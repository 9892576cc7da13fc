"""Fixtures for end-to-end runs of real registry clients against a registry on loopback.

Set DOCKYARD_E2E_TARGET=HOST:PORT to aim the same tests at another registry (for
instance the reference implementation) instead of a Dockyard server started here.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.backends import selected_backends
from tests.server import require_tool
from tests.system.clients.clients import Buildah, Http, Podman, Skopeo, private_containers_conf
from tests.system.clients.dockerd import DockerDaemon, TrustedCa
from tests.system.clients.modes import MODES, Served, serve


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
    daemon.start()
    yield daemon
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
