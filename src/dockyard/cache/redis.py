"""The cache on Redis: one hash per scope and generation, each read or fill one round trip.

Redis is an optimisation here, never a dependency: when it fails, lookups are misses and
the node keeps serving from the database. After a failure Redis is left alone for a few
seconds, so an outage costs each request nothing rather than a timeout.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from dockyard.cache.base import Cache, Lookup

log = logging.getLogger("dockyard.cache")

PREFIX = "dockyard:cache:"
BACKOFF_SECONDS = 5.0

# Generation of a scope = "<global>.<scope>"; entries live in a hash named by it.
_GET = """
local g = (redis.call('GET', KEYS[1]) or '0') .. '.' .. (redis.call('GET', KEYS[2]) or '0')
return {g, redis.call('HGET', KEYS[3] .. g, ARGV[1])}
"""
_FILL = """
local g = (redis.call('GET', KEYS[1]) or '0') .. '.' .. (redis.call('GET', KEYS[2]) or '0')
if g == ARGV[1] then
  redis.call('HSET', KEYS[3] .. g, ARGV[2], ARGV[3])
  redis.call('EXPIRE', KEYS[3] .. g, ARGV[4])
end
return g
"""


@dataclass(frozen=True)
class RedisOptions:
    host: str
    port: int
    db: int = 0
    username: str | None = None
    password: str | None = None
    tls: bool = False
    tls_ca_files: tuple[str, ...] = ()
    tls_certificate: str | None = None
    tls_key: str | None = None
    tls_verify: bool = True
    connect_timeout: float = 2.0
    timeout: float = 2.0
    max_connections: int = 64


def client_arguments(options: RedisOptions) -> dict[str, Any]:
    """Keyword arguments for a redis-py client, asyncio or blocking alike."""
    arguments: dict[str, Any] = {
        "host": options.host, "port": options.port, "db": options.db,
        "username": options.username, "password": options.password,
        "socket_connect_timeout": options.connect_timeout, "socket_timeout": options.timeout,
        "max_connections": options.max_connections,
    }
    if options.tls:
        arguments |= {
            "ssl": True,
            "ssl_ca_certs": options.tls_ca_files[0] if options.tls_ca_files else None,
            "ssl_certfile": options.tls_certificate,
            "ssl_keyfile": options.tls_key,
            "ssl_cert_reqs": "required" if options.tls_verify else "none",
        }
    return arguments


def connect(options: RedisOptions) -> Redis:
    """A pooled client; connections are made on first use."""
    return Redis(
        retry=Retry(NoBackoff(), retries=1),  # a cache must not make a request wait
        **client_arguments(options),
    )


class RedisCache(Cache):
    def __init__(self, client: Redis, ttl_seconds: int) -> None:
        self._redis = client
        self._ttl = max(1, ttl_seconds)
        self._get = client.register_script(_GET)
        self._fill = client.register_script(_FILL)
        self._resume_at = 0.0
        self._missed_bump = False

    @staticmethod
    def _keys(scope: str) -> list[str]:
        return [f"{PREFIX}gen", f"{PREFIX}gen:{scope}", f"{PREFIX}{scope}:"]

    def _usable(self) -> bool:
        return time.monotonic() >= self._resume_at

    def _failed(self, action: str, exc: Exception) -> None:
        if self._usable():
            log.warning("redis %s failed, serving from the database: %s", action, exc)
        self._resume_at = time.monotonic() + BACKOFF_SECONDS

    async def get(self, scope: str, key: str) -> Lookup:
        if not self._usable():
            return Lookup("", None)
        if self._missed_bump:
            # An invalidation was lost while Redis was away: drop everything once it is back.
            self._missed_bump = False
            await self.invalidate_all()
            return Lookup("", None)
        try:
            generation, value = await self._get(keys=self._keys(scope), args=[key])
        except (RedisError, OSError) as exc:
            self._failed("read", exc)
            return Lookup("", None)
        return Lookup(_text(generation), value)

    async def fill(self, scope: str, generation: str, key: str, value: bytes) -> None:
        if not generation or not self._usable():
            return
        try:
            await self._fill(keys=self._keys(scope), args=[generation, key, value, self._ttl])
        except (RedisError, OSError) as exc:
            self._failed("fill", exc)

    async def invalidate(self, scope: str) -> None:
        await self._bump(self._keys(scope)[1])

    async def invalidate_all(self) -> None:
        await self._bump(self._keys("")[0])

    async def _bump(self, key: str) -> None:
        """Tried even while backing off: a missed bump could leave a stale entry."""
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                # Outliving every entry filled under it, a counter may then expire unseen.
                pipe.incr(key)
                pipe.expire(key, 2 * self._ttl)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            self._missed_bump = True
            self._failed("invalidation", exc)

    async def close(self) -> None:
        await self._redis.aclose()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
