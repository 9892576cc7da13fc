"""SQLite engines: a full database or disk surfaces as ENOSPC, as a full disk does for blobs."""

from __future__ import annotations

import asyncio
import contextlib
import errno
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from dockyard.metadata.engine import Engines, create_engines

FILLER = "x" * 4000


async def _engines(tmp_path: Path) -> Engines:
    engines = create_engines(f"sqlite+aiosqlite:///{tmp_path / 'meta.db'}")
    async with engines.write.begin() as connection:
        await connection.execute(text("CREATE TABLE filler (x TEXT)"))
    return engines


@contextlib.asynccontextmanager
async def _capped_transaction(engines: Engines, path: str) -> AsyncIterator[Any]:
    """A write transaction on a database that may not grow: the state of a full disk."""
    if path == "inline":  # the gate's engine, which the pushes' transactions use
        assert engines.inline_write is not None
        with engines.inline_write.connect() as sync_connection:
            pages = sync_connection.scalar(text("PRAGMA page_count"))
            sync_connection.execute(text(f"PRAGMA max_page_count = {pages}"))
            sync_connection.commit()
        async with engines.begin_write() as connection:
            yield connection
        return
    async with engines.write.connect() as connection:  # aiosqlite's, as migrations use
        pages = await connection.scalar(text("PRAGMA page_count"))
        await connection.execute(text(f"PRAGMA max_page_count = {pages}"))
        await connection.commit()
        async with connection.begin():
            yield connection


@pytest.mark.parametrize("path", ["inline", "driver"])
def test_a_full_database_raises_enospc_and_stores_nothing(tmp_path: Path, path: str) -> None:
    async def main() -> None:
        engines = await _engines(tmp_path)
        try:
            with pytest.raises(OSError) as raised:
                async with _capped_transaction(engines, path) as connection:
                    for _ in range(50):
                        await connection.execute(text("INSERT INTO filler VALUES (:x)"),
                                                 {"x": FILLER})
            assert raised.value.errno == errno.ENOSPC
            assert "full" in str(raised.value)
            async with engines.read.connect() as connection:
                assert await connection.scalar(text("SELECT count(*) FROM filler")) == 0
        finally:
            await engines.dispose()

    asyncio.run(main())
