"""Fixtures for the HTTP API tests: a client on the shared server and a fresh repository."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.server import RunningRegistry
from tests.system.api.client import Client, repo_name


@pytest.fixture
def client(registry: RunningRegistry) -> Iterator[Client]:
    """A client bound to the session's shared Dockyard."""
    api = Client(registry.url)
    yield api
    api.close()


@pytest.fixture
def name() -> str:
    """A repository no other test touches."""
    return repo_name()
