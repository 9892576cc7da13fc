"""Run-time settings every worker and node reads (the read-only switch)."""

from __future__ import annotations

from sqlalchemy import select

from dockyard.metadata.clock import utc_now
from dockyard.metadata.engine import Engines
from dockyard.metadata.interfaces import SettingStore
from dockyard.metadata.schema import settings
from dockyard.metadata.upsert import Upsert

_SET_SETTING = Upsert(settings, ["name"], ["value", "updated_at"])


class SQLSettingStore(SettingStore):
    """SettingStore on the settings rows."""

    def __init__(self, engines: Engines) -> None:
        self._engines = engines


    async def get_setting(self, name: str) -> str | None:
        async with self._engines.read.connect() as connection:
            value = await connection.scalar(select(settings.c.value).where(settings.c.name == name))
        return None if value is None else str(value)

    async def set_setting(self, name: str, value: str) -> None:
        now = utc_now()
        async with self._engines.begin_write() as connection:
            await connection.execute(_SET_SETTING.on(connection),
                                     {"name": name, "value": value, "updated_at": now})
