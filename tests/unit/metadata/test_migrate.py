"""Migrations: idempotent, refusing a schema from a newer Dockyard, and equal to schema.py."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, select, text

from dockyard.metadata import migrate
from dockyard.metadata.engine import create_engines
from dockyard.metadata.schema import manifests, metadata
from tests.backends import Services


def test_migration_is_idempotent_and_refuses_unknown_schema(tmp_path: Path) -> None:
    async def main() -> None:
        engines = create_engines(f"sqlite+aiosqlite:///{tmp_path / 'meta.db'}")
        try:
            await migrate.upgrade(engines.write)
            await migrate.upgrade(engines.write)
            async with engines.write.begin() as connection:
                await connection.exec_driver_sql(
                    "UPDATE alembic_version SET version_num = 'from-the-future'"
                )
            with pytest.raises(migrate.UnknownSchema):
                await migrate.upgrade(engines.write)
        finally:
            await engines.dispose()

    asyncio.run(main())


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database on each engine."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'meta.db'}"
    services: Services = request.getfixturevalue("services")
    return services.postgres.create()


def test_the_migrations_build_exactly_the_schema_module(fresh_database: str) -> None:
    """What Alembic's autogenerate would write after the last migration: nothing."""

    def differences(connection: Connection) -> list[Any]:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, metadata))

    async def main() -> list[Any]:
        engines = create_engines(fresh_database)
        try:
            await migrate.upgrade(engines.write)
            async with engines.write.connect() as connection:
                return await connection.run_sync(differences)
        finally:
            await engines.dispose()

    assert asyncio.run(main()) == []


def test_manifests_pushed_before_the_mirror_migration_are_not_cached(
        fresh_database: str) -> None:
    """0004 adds manifests.cached: every manifest already stored was pushed whole."""

    def upgrade_to(revision: str) -> Callable[[Connection], None]:
        def run(connection: Connection) -> None:
            config = Config()
            config.set_main_option("script_location", migrate.SCRIPT_LOCATION)
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
        return run

    async def main() -> list[Any]:
        engines = create_engines(fresh_database)
        try:
            async with engines.write.begin() as connection:
                await connection.run_sync(upgrade_to("0003"))
                now = datetime.now(UTC)
                await connection.execute(
                    text("INSERT INTO repositories (name, created_at) VALUES ('repo', :now)"),
                    {"now": now})
                await connection.execute(text(
                    "INSERT INTO manifests (repository_id, digest, media_type, size, content,"
                    " created_at) SELECT id, 'sha256:aa', 'x', 1, :content, :now"
                    " FROM repositories"), {"content": b"{}", "now": now})
            await migrate.upgrade(engines.write)
            async with engines.read.connect() as connection:
                return list((await connection.scalars(select(manifests.c.cached))).all())
        finally:
            await engines.dispose()

    assert asyncio.run(main()) == [False]
