"""What only the Redis cache does: outages cost a miss instead of an error and leave no stale
entry behind an invalidation Redis did not get; its connection options are honoured."""

from __future__ import annotations

import asyncio
import secrets

import pytest

from dockyard.cache import redis
from dockyard.cache.redis import RedisCache, RedisOptions, connect
from tests.backends import REDIS_HOST, REDIS_PORT, redis_addr
from tests.caches import redis_cache
from tests.proxy import CuttableProxy
from tests.server import free_port


def test_an_unreachable_redis_is_only_a_miss() -> None:
    async def scenario() -> None:
        cache = redis_cache(port=free_port())
        try:
            lookup = await cache.get("repo", "t:x")
            assert lookup.value is None
            await cache.fill("repo", lookup.generation, "t:x", b"v")
            await cache.invalidate("repo")
            assert (await cache.get("repo", "t:x")).value is None
        finally:
            await cache.close()

    asyncio.run(scenario())


def test_an_invalidation_lost_in_an_outage_drops_every_entry_once_redis_is_back(
        monkeypatch: pytest.MonkeyPatch) -> None:
    redis_addr()
    monkeypatch.setattr(redis, "BACKOFF_SECONDS", 0.2)
    proxy = CuttableProxy("127.0.0.1", REDIS_PORT)
    scope = f"outage/{secrets.token_hex(8)}"

    async def scenario() -> None:
        cut_off, other = redis_cache(port=proxy.port), redis_cache()
        try:
            lookup = await cut_off.get(scope, "t:latest")
            await cut_off.fill(scope, lookup.generation, "t:latest", b"old")
            proxy.cut()
            await cut_off.invalidate(scope)  # the write committed; Redis never hears of it
            assert (await other.get(scope, "t:latest")).value == b"old"
            proxy.restore()
            await asyncio.sleep(0.3)
            assert (await cut_off.get(scope, "t:latest")).value is None
            assert (await other.get(scope, "t:latest")).value is None
        finally:
            proxy.cut()
            await cut_off.close()
            await other.close()

    asyncio.run(scenario())


def test_the_database_option_keeps_caches_apart() -> None:
    redis_addr()
    scope = f"db/{secrets.token_hex(8)}"

    async def scenario() -> None:
        chosen = redis_cache()
        default = RedisCache(connect(RedisOptions(REDIS_HOST, REDIS_PORT)), 60)
        try:
            lookup = await chosen.get(scope, "k")
            await chosen.fill(scope, lookup.generation, "k", b"v")
            assert (await chosen.get(scope, "k")).value == b"v"
            assert (await default.get(scope, "k")).value is None
        finally:
            await chosen.close()
            await default.close()

    asyncio.run(scenario())
