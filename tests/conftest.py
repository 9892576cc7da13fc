"""Fixtures shared by the whole suite: real servers on real sockets."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from tests.backends import Services, backend, services
from tests.server import RunningRegistry, deep_merge, running_registry

__all__ = ["backend", "services"]  # session fixtures: the configurations and their services


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory, backend: str,
             services: Services) -> Iterator[RunningRegistry]:
    """One Dockyard server per backend (deletes enabled) shared by the session."""
    with running_registry(tmp_path_factory.mktemp("registry"),
                          services.config_for(backend)) as server:
        yield server


@pytest.fixture
def start_registry(
    tmp_path_factory: pytest.TempPathFactory, backend: str, services: Services,
) -> Iterator[Callable[..., RunningRegistry]]:
    """Start a dedicated server with extra config; stopped when the test ends."""
    with ExitStack() as stack:

        def start(config: dict[str, Any] | None = None, workers: int = 1,
                  env: dict[str, str] | None = None) -> RunningRegistry:
            workdir: Path = tmp_path_factory.mktemp("registry")
            merged = deep_merge(services.config_for(backend), config or {})
            return stack.enter_context(running_registry(workdir, merged, workers, env))

        yield start
