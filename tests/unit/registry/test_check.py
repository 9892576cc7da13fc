"""The integrity check, in-process: missing, corrupt and orphaned bytes, and the repair."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

from tests.system.api.client import digest_of, image_manifest, random_bytes
from tests.unit.registry.kit import open_kit, run


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
            # each stored byte is counted once, though a corrupt blob is read twice to confirm
            assert report.bytes_hashed == len(image.blobs[0]) + 400

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
            assert report.recent_unknown == 1  # the young file: counted, not judged
            await kit.registry.checker.run(repair=True)
            assert digest_of(orphan) not in kit.blob_files()
            assert digest_of(young) in kit.blob_files()
        finally:
            await kit.registry.close()

    run(scenario)
