"""Bring a database to the schema this Dockyard knows, and refuse one it does not."""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncEngine

SCRIPT_LOCATION = "dockyard.metadata:migrations"
MIGRATION_LOCK = 0x646F636B  # "dock": nodes starting together migrate one at a time


class UnknownSchema(RuntimeError):
    """The database was migrated by a newer Dockyard than this one."""


class SchemaOutOfDate(RuntimeError):
    """The database needs `dockyard migrate` before this Dockyard can serve it."""


def _alembic_config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    config.attributes["connection"] = connection
    return config


def _known_revision(connection: Connection) -> tuple[Config, str | None]:
    """The database's revision, refusing one this Dockyard has never heard of."""
    config = _alembic_config(connection)
    script = ScriptDirectory.from_config(config)
    current = MigrationContext.configure(connection).get_current_revision()
    known = {rev.revision for rev in script.walk_revisions()}
    if current is not None and current not in known:
        raise UnknownSchema(f"database schema revision {current!r} is newer than this Dockyard")
    return config, current


def _upgrade(connection: Connection) -> list[str]:
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
    config, current = _known_revision(connection)
    script = ScriptDirectory.from_config(config)
    pending = list(script.iterate_revisions("head", current))
    command.upgrade(config, "head")
    return [f"{revision.revision} {revision.doc}" for revision in reversed(pending)]


def _check(connection: Connection) -> None:
    config, current = _known_revision(connection)
    head = ScriptDirectory.from_config(config).get_current_head()
    if current != head:
        raise SchemaOutOfDate(
            f"database schema is at {current or 'nothing'}, this Dockyard needs {head}: "
            "run `dockyard migrate`"
        )


async def upgrade(engine: AsyncEngine) -> list[str]:
    """Migrate to this Dockyard's head (one node at a time on PostgreSQL); UnknownSchema for a
    database a newer Dockyard migrated.

    Returns the revisions applied, oldest first ("0002 <what it does>"); none when the
    database was up to date.
    """
    async with engine.begin() as connection:
        applied: list[str] = await connection.run_sync(_upgrade)
    return applied


async def check(engine: AsyncEngine) -> None:
    """Raise UnknownSchema or SchemaOutOfDate unless the database is at this Dockyard's head."""
    async with engine.connect() as connection:
        await connection.run_sync(_check)
