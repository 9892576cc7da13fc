"""The read-only switch: a flag in the database every worker sees."""

from __future__ import annotations

from pathlib import Path

import pytest

from dockyard.registry.errors import Unsupported
from dockyard.registry.readonly import ReadOnlySwitch
from tests.unit.registry.kit import open_kit, run


def test_read_only_switch_reaches_other_workers(tmp_path: Path) -> None:
    async def scenario() -> None:
        kit = await open_kit(tmp_path)
        try:
            settings = kit.registry.maintenance.settings
            other_worker = ReadOnlySwitch(settings, recheck=0)
            await kit.registry.readonly.check_write()
            await kit.registry.readonly.switch(True)
            with pytest.raises(Unsupported):
                await other_worker.check_write()
            await kit.registry.readonly.switch(False)
            await other_worker.check_write()
            with pytest.raises(Unsupported, match="read-only"):
                await ReadOnlySwitch(settings, configured=True).check_write()
        finally:
            await kit.registry.close()

    run(scenario)
