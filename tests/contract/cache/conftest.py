"""Every Cache implementation, for the contract suite, wrappers included: a wrapper is held
to the contract of what it wraps. A new implementation is one more fixture parameter here.

`nodes()` made in one test share one cache, as the nodes of a registry share Redis.
"""

from __future__ import annotations

import functools
import secrets
from collections.abc import Awaitable, Callable

import pytest

from dockyard.cache.base import Cache
from dockyard.observability.instrument import CountingCache
from tests.backends import redis_addr
from tests.caches import redis_cache
from tests.nodes import run_on_nodes

Nodes = Callable[[], Cache]
Run = Callable[[Callable[[Nodes], Awaitable[None]]], None]

def _redis() -> Nodes:
    redis_addr()  # fails in CI when Redis is not running
    return redis_cache


def _counting() -> Nodes:
    redis = _redis()
    return lambda: CountingCache(redis(), "contract")


@pytest.fixture(params=[pytest.param(_redis, id="redis"),
                        pytest.param(_counting, id="counting-redis")])
def run(request: pytest.FixtureRequest) -> Run:
    """Run a scenario on the implementation; it is given the factory of nodes."""
    nodes: Nodes = request.param()
    return functools.partial(run_on_nodes, nodes)


@pytest.fixture
def scope() -> str:
    """A scope no other test (nor an earlier run: Redis outlives it) has used."""
    return f"contract/{secrets.token_hex(8)}"
