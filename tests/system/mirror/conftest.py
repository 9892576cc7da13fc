"""Upstreams for the mirror tests, one of each per module: the Go reference registry behind
htpasswd Basic auth and a Dockyard in bearer mode, both knowing the mirror's robot account;
and `start_mirror`, which starts a mirror (see kit.py) stopped when the test ends."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import pytest

from tests.authkit import auth_config, write_htpasswd
from tests.server import RunningRegistry, running_registry
from tests.system.mirror.kit import UPSTREAM_CREDENTIALS, MirrorStarter
from tests.upstreams import ReferenceRegistry, reference_registry


@pytest.fixture
def start_mirror(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MirrorStarter]:
    with ExitStack() as stack:
        yield MirrorStarter(stack, lambda: tmp_path_factory.mktemp("mirror"))


@pytest.fixture
def stack() -> Iterator[ExitStack]:
    """For what a test starts itself (fake upstreams): closed when it ends."""
    with ExitStack() as exits:
        yield exits


@pytest.fixture(scope="module")
def go_upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReferenceRegistry]:
    """The Go reference registry; the mirror logs in with Basic."""
    workdir = tmp_path_factory.mktemp("go-upstream")
    with reference_registry(workdir, users=dict([UPSTREAM_CREDENTIALS])) as registry:
        yield registry


@pytest.fixture(scope="module")
def bearer_upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRegistry]:
    """A Dockyard with its built-in token service; the mirror does the token dance."""
    workdir = tmp_path_factory.mktemp("bearer-upstream")
    htpasswd = write_htpasswd(workdir / "htpasswd", dict([UPSTREAM_CREDENTIALS]))
    config: dict[str, Any] = auth_config(htpasswd, mode="bearer")
    with running_registry(workdir, config) as server:
        yield server
