"""The implementations the metadata contract runs on: one fixture parameter each.

Each database is made and migrated once per session and emptied before every test. The
cached implementations use a Redis database of their own and drop every entry before each
test, so no answer survives from an earlier test (or run).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pytest
from sqlalchemy import delete, insert

from dockyard.cache.redis import RedisCache, RedisOptions, connect
from dockyard.metadata import migrate
from dockyard.metadata.cached import CachedMetadataStore
from dockyard.metadata.engine import Engines, create_engines
from dockyard.metadata.interfaces import MaintenanceStores, MetadataStore
from dockyard.metadata.outbox import COUNTER, Outbox
from dockyard.metadata.schema import event_counter, metadata
from dockyard.metadata.store import SQLMetadataStore
from dockyard.observability.instrument import InstrumentedMetadataStore
from tests.backends import REDIS_HOST, REDIS_PORT, Services, redis_addr

T = TypeVar("T")

REDIS_DB = 7
"""Not the default database: the cache contract and running servers use that one."""


@dataclass(frozen=True)
class Stores:
    """What a contract test talks to: the request store, the maintenance stores, the outbox."""

    metadata: MetadataStore
    maintenance: MaintenanceStores
    outbox: Outbox


Wrap = Callable[[MetadataStore], AbstractAsyncContextManager[MetadataStore]]


@asynccontextmanager
async def _unwrapped(store: MetadataStore) -> AsyncIterator[MetadataStore]:
    yield store


@asynccontextmanager
async def _redis_cached(store: MetadataStore) -> AsyncIterator[MetadataStore]:
    cache = RedisCache(connect(RedisOptions(REDIS_HOST, REDIS_PORT, db=REDIS_DB)), 60)
    await cache.invalidate_all()
    yield CachedMetadataStore(store, cache)


@asynccontextmanager
async def _instrumented_redis_cached(store: MetadataStore) -> AsyncIterator[MetadataStore]:
    """The stack a worker with metrics and Redis runs."""
    async with _redis_cached(store) as cached:
        yield InstrumentedMetadataStore(cached)


async def _empty(engines: Engines) -> None:
    """Every table as a fresh migration leaves it."""
    async with engines.write.begin() as connection:
        for table in reversed(metadata.sorted_tables):
            await connection.execute(delete(table))
        await connection.execute(insert(event_counter).values(name=COUNTER, value=0))


@dataclass(frozen=True)
class Implementation:
    """One implementation under test: a migrated database and how the store is wrapped."""

    url: str
    wrap: Wrap = _unwrapped

    def run(self, scenario: Callable[[Stores], Awaitable[T]]) -> T:
        """Run `scenario` against empty stores in an event loop of its own."""

        async def main() -> T:
            engines = create_engines(self.url)
            await _empty(engines)
            async with self.wrap(SQLMetadataStore(engines)) as store:
                try:
                    return await scenario(Stores(store, store.maintenance(), Outbox(engines)))
                finally:
                    await store.close()

        return asyncio.run(main())


def _migrated(url: str) -> str:
    async def main() -> None:
        engines = create_engines(url)
        try:
            await migrate.upgrade(engines.write)
        finally:
            await engines.dispose()

    asyncio.run(main())
    return url


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    path: Path = tmp_path_factory.mktemp("contract") / "metadata.db"
    return _migrated(f"sqlite+aiosqlite:///{path}")


@pytest.fixture(scope="session")
def postgresql_url(services: Services) -> str:
    return _migrated(services.postgres.create())


_IMPLEMENTATIONS: dict[str, tuple[str, Wrap]] = {
    "sqlite": ("sqlite_url", _unwrapped),
    "postgresql": ("postgresql_url", _unwrapped),
    "redis-cached-sqlite": ("sqlite_url", _redis_cached),
    "instrumented-redis-cached-sqlite": ("sqlite_url", _instrumented_redis_cached),
}


@pytest.fixture(params=list(_IMPLEMENTATIONS))
def stores(request: pytest.FixtureRequest) -> Implementation:
    """Every implementation of the metadata interfaces; a new one is a new entry above."""
    database, wrap = _IMPLEMENTATIONS[request.param]
    if wrap is not _unwrapped:
        redis_addr()  # skips, or fails in CI, without a Redis
    return Implementation(request.getfixturevalue(database), wrap)
