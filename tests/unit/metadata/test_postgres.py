"""PostgreSQL: `dockyard migrate`, the same migrations as SQLite, and refusing unknown schemas."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest
import yaml
from sqlalchemy import text
from sqlalchemy.engine import make_url

from dockyard.metadata.postgres import PostgresOptions, postgres_engine
from tests.backends import Services


def _dockyard(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dockyard", *args, "--config", str(config)],
        capture_output=True, text=True, timeout=60, check=False,
    )


def _sql(url: str, statement: str) -> str | None:
    async def run() -> str | None:
        dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        connection = await asyncpg.connect(dsn)
        try:
            result = await connection.fetchval(statement)
            return None if result is None else str(result)
        finally:
            await connection.close()

    return asyncio.run(run())


def test_migrate_then_refuse_unknown_and_outdated_schemas(services: Services,
                                                          tmp_path: Path) -> None:
    url = services.postgres.create()
    config = tmp_path / "config.yml"
    document = {"version": 0.1, "storage": {"filesystem": {"rootdirectory": str(tmp_path)}},
                "database": {"url": url, "automigrate": False},
                "http": {"addr": "127.0.0.1:1"}}
    config.write_text(yaml.safe_dump(document))

    refused = _dockyard(config, "serve", "--workers", "1")
    assert refused.returncode == 1 and "run `dockyard migrate`" in refused.stderr

    migrated = _dockyard(config, "migrate")
    assert migrated.returncode == 0, migrated.stderr
    head = _sql(url, "SELECT version_num FROM alembic_version")
    assert head is not None
    assert _dockyard(config, "migrate").returncode == 0  # idempotent
    assert _sql(url, "SELECT count(*) FROM tags") == "0"

    _sql(url, "UPDATE alembic_version SET version_num = 'ffffffffffff'")
    for command in (("migrate",), ("serve", "--workers", "1")):
        newer = _dockyard(config, *command)
        assert newer.returncode == 1, newer.stderr
        assert "newer than this Dockyard" in newer.stderr


def test_a_query_cancelled_midway_raises_cancelled_not_unavailable(services: Services) -> None:
    """A cancelled task must end: shutdown and reloads cancel tasks that may be mid-query."""
    url = services.postgres.create()

    async def main() -> None:
        engine = postgres_engine(url, PostgresOptions())
        try:
            async def slow() -> None:
                async with engine.connect() as connection:
                    await connection.execute(text("SELECT pg_sleep(5)"))

            task = asyncio.create_task(slow())
            await asyncio.sleep(0.5)  # inside pg_sleep by now
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await asyncio.wait_for(task, 10)
            async with engine.connect() as connection:  # the pool still serves
                assert await connection.scalar(text("SELECT 1")) == 1
        finally:
            await engine.dispose()

    asyncio.run(main())
