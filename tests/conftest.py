"""Fixtures shared by the whole suite: real servers on real sockets."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from tests.server import RunningRegistry, running_registry


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRegistry]:
    """One Dockyard server (filesystem + SQLite, deletes enabled) shared by the session."""
    with running_registry(tmp_path_factory.mktemp("registry")) as server:
        yield server


@pytest.fixture
def start_registry(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., RunningRegistry]]:
    """Start a dedicated server with extra config; stopped when the test ends."""
    with ExitStack() as stack:

        def start(config: dict[str, Any] | None = None, workers: int = 1,
                  env: dict[str, str] | None = None) -> RunningRegistry:
            workdir: Path = tmp_path_factory.mktemp("registry")
            return stack.enter_context(running_registry(workdir, config, workers, env))

        yield start
