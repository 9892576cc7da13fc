"""The `redis` section: the shared cache and the nodes' meeting place."""

from __future__ import annotations

from pydantic import Field, field_validator

from dockyard.config.section import Section
from dockyard.config.values import Duration, HostPort, PositiveDuration, parse_duration

IDLE_TIMEOUT = "300s"
"""distribution's default `pool.idletimeout`, the only value accepted (see RedisPoolConfig)."""


class RedisPoolConfig(Section):
    """Connections per worker process.

    `idletimeout` is accepted so distribution configs load, but only at its default: the
    Redis client keeps idle connections open and has no way to close them after a while, so
    another value would be a promise nothing keeps.
    """

    maxactive: int = Field(default=64, ge=1)
    """Connections per worker process."""
    idletimeout: Duration = IDLE_TIMEOUT

    @field_validator("idletimeout")
    @classmethod
    def _only_default_idle_timeout(cls, value: str) -> str:
        if parse_duration(value) != parse_duration(IDLE_TIMEOUT):
            raise ValueError(
                f"only {IDLE_TIMEOUT} is supported: the Redis client does not close idle "
                "connections (the server's own `timeout` setting does); remove the key")
        return value


class RedisTLSConfig(Section):
    """TLS to the Redis server, with distribution's key names."""

    enabled: bool = False
    certificate: str | None = None
    key: str | None = None
    clientcas: list[str] = Field(default_factory=list)
    """CA files that verify the Redis server (distribution's key name)."""
    insecureskipverify: bool = False


class RedisCacheConfig(Section):
    """How the cache of hot lookups uses Redis."""

    ttl: PositiveDuration = "10m"
    """An upper bound on how long an entry lives; writes invalidate entries at once."""


class RedisConfig(Section):
    """distribution's `redis` section: a cache for hot lookups and the nodes' meeting place."""

    addr: HostPort
    username: str | None = None
    password: str | None = None
    db: int = Field(default=0, ge=0)
    dialtimeout: PositiveDuration = "2s"
    readtimeout: PositiveDuration = "2s"
    writetimeout: PositiveDuration = "2s"
    pool: RedisPoolConfig = Field(default_factory=RedisPoolConfig)
    tls: RedisTLSConfig = Field(default_factory=RedisTLSConfig)
    cache: RedisCacheConfig = Field(default_factory=RedisCacheConfig)
