"""SQLite write transactions run whole in the writer thread, or not at all."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from dockyard.metadata import migrate
from dockyard.metadata.engine import Engines, create_engines
from dockyard.metadata.schema import repositories


async def _engines(tmp_path: Path) -> Engines:
    engines = create_engines(f"sqlite+aiosqlite:///{tmp_path / 'meta.db'}")
    await migrate.upgrade(engines.write)
    return engines


async def _count(engines: Engines) -> int:
    async with engines.read.connect() as connection:
        return int(await connection.scalar(select(func.count()).select_from(repositories)))


def _add(name: str) -> object:
    return insert(repositories).values(name=name, created_at=datetime.now(UTC))


def test_a_body_that_suspends_is_refused_and_rolled_back(tmp_path: Path) -> None:
    async def main() -> None:
        engines = await _engines(tmp_path)
        try:
            async def suspends(connection: AsyncConnection) -> None:
                await connection.execute(_add("half"))
                await asyncio.sleep(0)  # would hand the transaction to the event loop

            with pytest.raises(RuntimeError, match="suspend"):
                await engines.run_write(suspends)
            assert await _count(engines) == 0
        finally:
            await engines.dispose()

    asyncio.run(main())


def test_a_cancelled_caller_does_not_cut_its_transaction_short(tmp_path: Path) -> None:
    async def main() -> None:
        engines = await _engines(tmp_path)
        try:
            async def add(connection: AsyncConnection, name: str) -> None:
                await connection.execute(_add(name))

            first = asyncio.ensure_future(engines.run_write(lambda c: add(c, "first")))
            await asyncio.sleep(0)  # the first is in the writer thread, or queued for it
            first.cancel()
            await engines.run_write(lambda c: add(c, "second"))
            with pytest.raises(asyncio.CancelledError):
                await first
            assert await _count(engines) == 2
        finally:
            await engines.dispose()

    asyncio.run(main())
