"""Read-only mode: writes are refused, reads go on.

On from start with `storage.maintenance.readonly.enabled: true`, or at run time with
`dockyard readonly on|off`, which sets a flag in the database. Every worker and node re-reads
the flag at most once a second, so the switch needs no restart and all of them agree.
"""

from __future__ import annotations

import time

from dockyard.metadata.interfaces import SettingStore
from dockyard.registry.errors import Unsupported

READ_ONLY_SETTING = "readonly"
RECHECK_SECONDS = 1.0
MESSAGE = ("the registry is in read-only mode for maintenance: pulls work, pushes and deletes "
           "are refused until an operator runs `dockyard readonly off`")
CONFIGURED_MESSAGE = ("the registry is in read-only mode (storage.maintenance.readonly.enabled):"
                      " pulls work, pushes and deletes are refused")


class ReadOnlySwitch:
    def __init__(self, settings: SettingStore, configured: bool = False,
                 recheck: float = RECHECK_SECONDS) -> None:
        self._settings = settings
        self.configured = configured
        self._recheck = recheck
        self._cached = False
        self._checked_at = float("-inf")

    async def switched_on(self) -> bool:
        """The database flag, cached for up to `recheck` seconds."""
        now = time.monotonic()
        if now - self._checked_at >= self._recheck:
            self._cached = await self._settings.get_setting(READ_ONLY_SETTING) == "on"
            self._checked_at = now
        return self._cached

    async def enabled(self) -> bool:
        return self.configured or await self.switched_on()

    async def check_write(self) -> None:
        if self.configured:
            raise Unsupported(CONFIGURED_MESSAGE)
        if await self.switched_on():
            raise Unsupported(MESSAGE)

    async def switch(self, on: bool) -> None:
        await self._settings.set_setting(READ_ONLY_SETTING, "on" if on else "off")
        self._checked_at = float("-inf")
