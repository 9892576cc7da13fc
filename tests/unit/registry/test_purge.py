"""Upload purging, in-process: abandoned sessions and stray staged bytes go, live ones stay."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from dockyard.metadata.schema import uploads
from dockyard.registry.errors import BlobUploadUnknown
from dockyard.registry.purge import PurgeOptions
from tests.unit.registry.kit import Kit, chunk, open_kit, run


async def _age_upload(kit: Kit, upload_id: str, days: float) -> None:
    async with kit.engines.begin_write() as connection:
        when = datetime.now(UTC) - timedelta(days=days)
        await connection.execute(
            update(uploads).where(uploads.c.id == upload_id).values(updated_at=when)
        )


def _age_file(path: Path, days: float) -> None:
    when = datetime.now(UTC).timestamp() - days * 86400
    os.utime(path, (when, when))


def test_purging_removes_abandoned_sessions_only(tmp_path: Path) -> None:
    async def scenario() -> None:
        kit = await open_kit(tmp_path)
        uploads_dir = tmp_path / "uploads"
        try:
            old = await kit.registry.uploads.start("r")
            await kit.registry.uploads.append("r", old.id, chunk(b"x" * 1000))
            fresh = await kit.registry.uploads.start("r")
            never_appended = await kit.registry.uploads.start("r")
            await _age_upload(kit, old.id, days=8)
            _age_file(uploads_dir / never_appended.id, days=8)
            stray = uploads_dir / "0f4b2f0e-3d0c-4c43-9e55-9a4f8d0b8b11"
            stray.write_bytes(b"z" * 10)
            _age_file(stray, days=8)

            dry = await kit.registry.purger.run(PurgeOptions(age=7 * 86400, dry_run=True))
            assert (dry.sessions, dry.strays, dry.bytes) == (1, 2, 1010)
            assert (uploads_dir / old.id).exists() and stray.exists()

            report = await kit.registry.purger.run(PurgeOptions(age=7 * 86400))
            assert (report.sessions, report.strays, report.bytes) == (1, 2, 1010)
            assert not (uploads_dir / old.id).exists() and not stray.exists()
            assert await kit.registry._metadata.get_upload(old.id) is None
            with pytest.raises(BlobUploadUnknown):
                await kit.registry.uploads.status("r", never_appended.id)
            assert (await kit.registry.uploads.status("r", fresh.id)).size == 0
        finally:
            await kit.registry.close()

    run(scenario)
