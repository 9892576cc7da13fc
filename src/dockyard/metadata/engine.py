"""Database engines: one for reads and one for writes.

On SQLite the write engine opens `BEGIN IMMEDIATE`, so concurrent writers (several worker
processes) queue on the busy timeout instead of failing when a read lock cannot be upgraded.
PostgreSQL uses one engine for both.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from dockyard.metadata.postgres import PostgresOptions, postgres_engine

SQLITE_BUSY_TIMEOUT_MS = 30_000


@dataclass(frozen=True)
class Engines:
    read: AsyncEngine
    write: AsyncEngine
    inline_read: Engine | None = None
    """SQLite only: a blocking engine for small reads, run on the event loop itself.

    A WAL reader never waits for a writer, and an indexed lookup takes microseconds, far
    less than the thread hop of the async driver; so hot lookups skip it.
    """

    async def dispose(self) -> None:
        await self.read.dispose()
        if self.write is not self.read:
            await self.write.dispose()
        if self.inline_read is not None:
            self.inline_read.dispose()


def _configure_sqlite(engine: Engine, begin: str | None) -> None:
    """WAL, a busy timeout, and our own BEGIN (None: statements run in autocommit)."""

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON",
                       f"busy_timeout={SQLITE_BUSY_TIMEOUT_MS}"):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    if begin is not None:

        @event.listens_for(engine, "begin")
        def _begin(connection: Any) -> None:
            connection.exec_driver_sql(begin)


def _sqlite_engine(url: str, begin: str, echo: bool, pool_size: int) -> AsyncEngine:
    engine = create_async_engine(url, echo=echo, pool_size=pool_size, max_overflow=0)
    _configure_sqlite(engine.sync_engine, begin)
    return engine


def _sqlite_inline_engine(url: str, echo: bool) -> Engine:
    sync_url = make_url(url).set(drivername="sqlite+pysqlite")
    engine = create_engine(sync_url, echo=echo, pool_reset_on_return=None)
    _configure_sqlite(engine, None)
    return engine


def create_engines(url: str, pool_size: int = 10, echo: bool = False,
                   postgres: PostgresOptions | None = None) -> Engines:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database:
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        return Engines(
            read=_sqlite_engine(url, "BEGIN", echo, pool_size),
            # SQLite has one writer at a time. One connection per process makes writers of
            # this process queue in asyncio instead of in SQLite's sleeping busy handler.
            write=_sqlite_engine(url, "BEGIN IMMEDIATE", echo, 1),
            inline_read=_sqlite_inline_engine(url, echo),
        )
    engine = postgres_engine(url, postgres or PostgresOptions(pool_size=pool_size), echo)
    return Engines(read=engine, write=engine)
