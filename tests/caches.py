"""Redis caches for tests, in a database of their own on the local Redis."""

from __future__ import annotations

from dockyard.cache.redis import RedisCache, RedisOptions, connect
from tests.backends import REDIS_HOST, REDIS_PORT

REDIS_DB = 15
"""The last of Redis's default databases: an `invalidate_all` in a test must not empty the
cache of the servers other tests run on the same Redis."""


def redis_cache(host: str = REDIS_HOST, port: int = REDIS_PORT) -> RedisCache:
    return RedisCache(connect(RedisOptions(host, port, db=REDIS_DB, connect_timeout=0.5)), 60)
