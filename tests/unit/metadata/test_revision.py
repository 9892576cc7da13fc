"""The readiness check's schema head is the last migration's revision."""

from __future__ import annotations

from alembic.config import Config
from alembic.script import ScriptDirectory

from dockyard.metadata import migrate
from dockyard.metadata.revision import SCHEMA_HEAD


def test_schema_head_names_the_last_migration() -> None:
    config = Config()
    config.set_main_option("script_location", migrate.SCRIPT_LOCATION)
    assert ScriptDirectory.from_config(config).get_current_head() == SCHEMA_HEAD
