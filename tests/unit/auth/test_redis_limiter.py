"""Failed-login limits shared through a real Redis, and what happens when Redis is away."""

from __future__ import annotations

import uuid

import pytest
from redis import Redis

from dockyard.auth.redis_limiter import PREFIX, RedisFailureLimiter
from tests.server import free_port, require_service

WINDOW = 60.0


def _limit(key: str) -> int:
    return 3 if key.startswith("user:") else 10


@pytest.fixture
def redis_client() -> Redis:
    require_service("Redis", "127.0.0.1", 6379)
    return Redis(host="127.0.0.1", port=6379)


def _keys() -> list[str]:
    """Fresh keys per test: the Redis is shared with other runs."""
    token = uuid.uuid4().hex
    return [f"user:{token}", f"addr:{token}"]


def test_nodes_share_one_limit(redis_client: Redis) -> None:
    node_a = RedisFailureLimiter(redis_client, WINDOW, _limit)
    node_b = RedisFailureLimiter(Redis(host="127.0.0.1", port=6379), WINDOW, _limit)
    keys = _keys()
    node_a.failed(keys)
    node_b.failed(keys)
    assert node_a.blocked_for(keys) == 0
    node_a.failed(keys)
    wait = node_b.blocked_for(keys)
    assert 0 < wait <= WINDOW
    node_b.succeeded(keys[:1])
    assert node_a.blocked_for(keys) == 0
    redis_client.delete(*(PREFIX + key for key in keys))


def test_window_slides(redis_client: Redis) -> None:
    now = [1000.0]
    limiter = RedisFailureLimiter(redis_client, WINDOW, _limit, clock=lambda: now[0])
    keys = _keys()
    for _ in range(3):
        limiter.failed(keys)
    assert limiter.blocked_for(keys) == WINDOW
    now[0] += WINDOW - 1
    assert limiter.blocked_for(keys) == 1
    now[0] += 1
    assert limiter.blocked_for(keys) == 0
    redis_client.delete(*(PREFIX + key for key in keys))


def test_redis_away_counts_in_process() -> None:
    unreachable = Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=0.5)
    limiter = RedisFailureLimiter(unreachable, WINDOW, _limit)
    keys = _keys()
    assert limiter.blocked_for(keys) == 0
    for _ in range(3):
        limiter.failed(keys)
    assert limiter.blocked_for(keys) > 0, "protection must not stop when Redis does"
