"""Two Dockyard nodes sharing one PostgreSQL database, one S3 prefix and one Redis."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import pytest

from tests.backends import Services
from tests.server import RunningRegistry, deep_merge, running_registry


@dataclass
class Cluster:
    """Nodes of one registry; `add` starts another node on the same shared state."""

    config: dict[str, Any]
    nodes: list[RunningRegistry]
    add: Callable[..., RunningRegistry]


@pytest.fixture(scope="module")
def cluster(services: Services, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    shared = services.scaled_config()
    with ExitStack() as stack:

        def add(extra: dict[str, Any] | None = None) -> RunningRegistry:
            config = deep_merge(shared, extra or {})
            workdir = tmp_path_factory.mktemp("node")
            return stack.enter_context(running_registry(workdir, config))

        made = Cluster(shared, [], add)
        made.nodes.extend([add(), add()])
        yield made
