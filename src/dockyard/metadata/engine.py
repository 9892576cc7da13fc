"""Database engines: one for reads and one for writes.

On SQLite the write engine opens `BEGIN IMMEDIATE`, so concurrent writers (several worker
processes) queue on the busy timeout instead of failing when a read lock cannot be upgraded.
PostgreSQL uses one engine for both.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

SQLITE_BUSY_TIMEOUT_MS = 30_000


@dataclass(frozen=True)
class Engines:
    read: AsyncEngine
    write: AsyncEngine

    async def dispose(self) -> None:
        await self.read.dispose()
        if self.write is not self.read:
            await self.write.dispose()


def _sqlite_engine(url: str, begin: str, echo: bool) -> AsyncEngine:
    engine = create_async_engine(url, echo=echo)

    @event.listens_for(engine.sync_engine, "connect")
    def _configure(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON",
                       f"busy_timeout={SQLITE_BUSY_TIMEOUT_MS}"):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _begin(connection: Any) -> None:
        connection.exec_driver_sql(begin)

    return engine


def create_engines(url: str, pool_size: int = 10, echo: bool = False) -> Engines:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database:
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        return Engines(
            read=_sqlite_engine(url, "BEGIN", echo),
            write=_sqlite_engine(url, "BEGIN IMMEDIATE", echo),
        )
    engine = create_async_engine(url, pool_size=pool_size, pool_pre_ping=True, echo=echo)
    return Engines(read=engine, write=engine)
