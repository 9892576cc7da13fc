"""The Redis cache: generation-guarded fills, invalidation seen by every client, outages."""

from __future__ import annotations

import asyncio
import secrets

from dockyard.cache.redis import RedisCache, RedisOptions, connect
from tests.backends import REDIS_HOST, REDIS_PORT, redis_addr


def _cache(port: int = REDIS_PORT) -> RedisCache:
    return RedisCache(connect(RedisOptions(REDIS_HOST, port, connect_timeout=0.5)), 60)


def test_fill_invalidate_and_the_race_it_guards() -> None:
    redis_addr()
    scope = f"test/{secrets.token_hex(4)}"

    async def scenario() -> None:
        node_a, node_b = _cache(), _cache()
        try:
            miss = await node_a.get(scope, "t:latest")
            assert miss.value is None
            await node_a.fill(scope, miss.generation, "t:latest", b"one")
            assert (await node_b.get(scope, "t:latest")).value == b"one"
            # A reader that looked before a write must not cache what it read.
            stale = await node_b.get(scope, "t:other")
            await node_a.invalidate(scope)
            await node_b.fill(scope, stale.generation, "t:other", b"old")
            assert (await node_a.get(scope, "t:other")).value is None
            assert (await node_b.get(scope, "t:latest")).value is None
            fresh = await node_b.get(scope, "t:latest")
            await node_b.fill(scope, fresh.generation, "t:latest", b"two")
            await node_a.invalidate_all()
            assert (await node_b.get(scope, "t:latest")).value is None
        finally:
            await node_a.close()
            await node_b.close()

    asyncio.run(scenario())


def test_an_unreachable_redis_is_only_a_miss() -> None:
    async def scenario() -> None:
        cache = _cache(port=1)
        try:
            lookup = await cache.get("repo", "t:x")
            assert lookup.value is None
            await cache.fill("repo", lookup.generation, "t:x", b"v")
            await cache.invalidate("repo")
            assert (await cache.get("repo", "t:x")).value is None
        finally:
            await cache.close()

    asyncio.run(scenario())
