"""Upload purging, integrity check, usage, leases and the read-only switch, in-process."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from dockyard.metadata.schema import uploads
from dockyard.registry import maintenance
from dockyard.registry.errors import BlobUploadUnknown, Unsupported
from dockyard.registry.maintenance import LeaseBusy, holder_id, holder_is_dead, run_exclusive
from dockyard.registry.purge import PurgeOptions
from dockyard.registry.readonly import ReadOnlySwitch
from tests.system.api.client import digest_of, image_manifest, random_bytes
from tests.unit.registry.kit import Kit, chunk, database_url, open_kit, run

__all__ = ["database_url"]


async def _age_upload(kit: Kit, upload_id: str, days: float) -> None:
    async with kit.registry.lifecycle._engines.begin_write() as connection:
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


def test_check_finds_missing_and_corrupt_blobs_and_repair_unlinks_them(tmp_path: Path) -> None:
    async def scenario() -> None:
        kit = await open_kit(tmp_path)
        try:
            image = image_manifest([random_bytes(300), random_bytes(400)])
            await kit.push("r", image, "v1")
            assert (await kit.registry.checker.run()).ok
            first, second = (digest_of(blob) for blob in image.blobs[1:])
            _blob_path(tmp_path, first).unlink()
            _blob_path(tmp_path, second).write_bytes(b"y" * 400)

            report = await kit.registry.checker.run()
            kinds = {(p.kind, p.digest) for p in report.problems}
            assert kinds == {("missing", first), ("corrupt", second)}
            assert report.blobs_checked == 3

            repaired = await kit.registry.checker.run(repair=True)
            assert repaired.repaired == 2
            assert not await kit.linked("r", first) and not await kit.linked("r", second)
            assert not _blob_path(tmp_path, second).exists()
            after = await kit.registry.checker.run()
            assert {(p.kind, p.digest) for p in after.problems} == {
                ("dangling-blob", first), ("dangling-blob", second)}

            # pushing the blobs again heals the image
            for blob in image.blobs[1:]:
                await kit.push_blob("r", blob)
            assert (await kit.registry.checker.run()).ok
        finally:
            await kit.registry.close()

    run(scenario)


def _blob_path(root: Path, digest: str) -> Path:
    algorithm, hex_digest = digest.split(":")
    return root / "blobs" / algorithm / hex_digest[:2] / hex_digest


def test_usage_is_deduplicated_and_logical(tmp_path: Path, database_url: str) -> None:
    async def scenario() -> None:
        kit = await open_kit(tmp_path, database_url)
        try:
            shared = random_bytes(10_000)
            one = image_manifest([shared, random_bytes(1_000)])
            two = image_manifest([shared, random_bytes(2_000)])
            await kit.push("one", one, "v1")
            await kit.push("two", two, "v1")
            usage = await kit.registry.lifecycle.usage()
            by_name = {item.name: item for item in usage.repositories}
            config_one, config_two = len(one.blobs[0]), len(two.blobs[0])
            assert by_name["one"].logical_bytes == config_one + 11_000 + one.size
            assert by_name["one"].unique_bytes == config_one + 1_000 + one.size
            assert by_name["two"].unique_bytes == config_two + 2_000 + two.size
            assert by_name["one"].blobs == 3 and by_name["one"].manifests == 1
            stored = sum(kit.blob_files().values()) + one.size + two.size
            assert usage.stored_bytes == stored
            assert usage.logical_bytes == stored + 10_000
            single = await kit.registry.lifecycle.usage("two")
            assert [item.name for item in single.repositories] == ["two"]
        finally:
            await kit.registry.close()

    run(scenario)


def test_lease_has_one_holder_and_frees_a_dead_ones(tmp_path: Path,
                                                     database_url: str) -> None:
    async def scenario() -> None:
        kit = await open_kit(tmp_path, database_url)
        lifecycle = kit.registry.lifecycle
        try:
            assert await lifecycle.try_lease("gc", "a", 60)
            assert not await lifecycle.try_lease("gc", "b", 60)
            assert await lifecycle.try_lease("gc", "a", 60)  # re-entrant for its holder
            await lifecycle.release_lease("gc", "a", finished=True)
            assert not await lifecycle.due("gc", 3600)
            assert await lifecycle.due("gc", 0)

            dead = subprocess.Popen([sys.executable, "-c", "pass"])
            dead.wait()
            holder = holder_id().rsplit(":", 2)[0] + f":{dead.pid}:x"
            assert holder_is_dead(holder)
            assert not holder_is_dead(holder_id())
            assert not holder_is_dead(f"elsewhere:boot:{os.getpid() + 1}:x")
            assert await lifecycle.try_lease("gc", holder, 60)
            assert await lifecycle.try_lease("gc", "b", 60, stale=holder_is_dead)

            async def job() -> str:
                return "ran"

            with pytest.raises(LeaseBusy):
                await run_exclusive(lifecycle, "gc", job)
            await lifecycle.release_lease("gc", "b", finished=False)
            assert await run_exclusive(lifecycle, "gc", job) == "ran"
        finally:
            await kit.registry.close()

    run(scenario)


def test_read_only_switch_reaches_other_workers(tmp_path: Path) -> None:
    async def scenario() -> None:
        kit = await open_kit(tmp_path)
        try:
            other_worker = ReadOnlySwitch(kit.registry.lifecycle, recheck=0)
            await kit.registry.readonly.check_write()
            await kit.registry.readonly.switch(True)
            with pytest.raises(Unsupported):
                await other_worker.check_write()
            await kit.registry.readonly.switch(False)
            await other_worker.check_write()
            with pytest.raises(Unsupported, match="read-only"):
                await ReadOnlySwitch(kit.registry.lifecycle, configured=True).check_write()
        finally:
            await kit.registry.close()

    run(scenario)


def test_check_reports_old_orphaned_bytes_and_repair_removes_them(tmp_path: Path) -> None:
    async def scenario() -> None:
        kit = await open_kit(tmp_path)
        try:
            image = image_manifest([random_bytes(300)])
            await kit.push("r", image, "v1")
            orphan = random_bytes(700)
            young = random_bytes(50)
            for data in (orphan, young):
                path = _blob_path(tmp_path, digest_of(data))
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
            old = datetime.now(UTC).timestamp() - 2 * 3600
            os.utime(_blob_path(tmp_path, digest_of(orphan)), (old, old))

            report = await kit.registry.checker.run()
            assert report.ok and report.listed
            assert [p.digest for p in report.orphans] == [digest_of(orphan)]
            assert report.orphan_bytes == 700
            await kit.registry.checker.run(repair=True)
            assert digest_of(orphan) not in kit.blob_files()
            assert digest_of(young) in kit.blob_files()
        finally:
            await kit.registry.close()

    run(scenario)


def test_scheduled_jobs_run_on_one_worker_at_a_time(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(maintenance, "FIRST_CHECK", (0.0, 0.05))

    async def scenario() -> None:
        kit = await open_kit(tmp_path)
        running: list[int] = []
        overlaps: list[int] = []

        async def job() -> None:
            running.append(1)
            overlaps.append(len(running))
            await asyncio.sleep(0.2)
            running.pop()

        async def never() -> bool:
            return False

        lifecycle = kit.registry.lifecycle
        workers = [maintenance.MaintenanceScheduler(
            lifecycle, [maintenance.Job("job", 0.5, job),
                        maintenance.Job("paused", 0.1, job, allowed=never)])
            for _ in range(3)]
        try:
            for worker in workers:
                worker.start()
            await asyncio.sleep(2.0)
        finally:
            for worker in workers:
                await worker.stop()
            await kit.registry.close()
        assert overlaps and max(overlaps) == 1
        assert 2 <= len(overlaps) <= 5, overlaps

    run(scenario)
