"""Garbage collection in-process: what goes, what stays, and the protocol with writers."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import insert, select, update

from dockyard.metadata.schema import blobs, manifest_references, manifests, repositories
from dockyard.oci.digest import Digest
from dockyard.registry.errors import ManifestBlobUnknown, RegistryErrors
from tests.system.api.client import (
    artifact_manifest,
    digest_of,
    image_manifest,
    index_manifest,
    random_bytes,
)
from tests.unit.registry.kit import database_url, open_kit, run

__all__ = ["database_url"]

FUTURE = datetime.now(UTC) + timedelta(days=1)
"""A cutoff after everything: treats every link as older than the grace period."""


def test_unreferenced_blobs_go_referenced_and_recent_stay(tmp_path: Path,
                                                          database_url: str) -> None:
    async def scenario() -> None:
        kit = await open_kit(tmp_path, database_url)
        try:
            image = image_manifest([random_bytes(300)])
            await kit.push("team/app", image, "v1")
            loose = random_bytes(1000)
            loose_digest = await kit.push_blob("team/app", loose)

            recent = await kit.gc(grace=3600)
            assert recent.blobs_removed == 0
            assert loose_digest in kit.blob_files()

            report = await kit.gc(grace=0)
            assert report.blobs_removed == 1
            assert report.bytes_reclaimed == len(loose)
            files = kit.blob_files()
            assert loose_digest not in files
            assert not await kit.linked("team/app", loose_digest)
            for blob in image.blobs:
                assert digest_of(blob) in files
                assert await kit.linked("team/app", digest_of(blob))
        finally:
            await kit.registry.close()

    run(scenario)


def test_dry_run_deletes_nothing_and_matches_the_real_run(tmp_path: Path) -> None:
    async def scenario() -> None:
        kit = await open_kit(tmp_path)
        try:
            kept = image_manifest([random_bytes(200)])
            await kit.push("r", kept, "keep")
            dropped = image_manifest([random_bytes(5000), random_bytes(7000)])
            await kit.push("r", dropped, "drop")
            await kit.registry.manifests.delete("r", "drop")  # untagged now
            for size in (100, 2000):
                await kit.push_blob("r", random_bytes(size))
            before = kit.blob_files()

            dry = await kit.gc(delete_untagged=True, dry_run=True)
            assert kit.blob_files() == before
            assert await kit.has_manifest("r", dropped.digest)

            real = await kit.gc(delete_untagged=True)
            after = kit.blob_files()
            assert (dry.manifests_removed, dry.blobs_removed) == (1, 5)
            assert (real.manifests_removed, real.blobs_removed) == (1, 5)
            assert dry.bytes_reclaimed == real.bytes_reclaimed
            assert real.bytes_reclaimed == sum(before.values()) - sum(after.values())
            assert not await kit.has_manifest("r", dropped.digest)
            assert await kit.has_manifest("r", kept.digest)
        finally:
            await kit.registry.close()

    run(scenario)


def test_untagged_manifests_stay_without_delete_untagged(tmp_path: Path) -> None:
    async def scenario() -> None:
        kit = await open_kit(tmp_path)
        try:
            image = image_manifest([random_bytes(100)])
            await kit.push("r", image, "v1")
            await kit.registry.manifests.delete("r", "v1")
            report = await kit.gc()
            assert report.manifests_removed == 0 and report.blobs_removed == 0
            assert await kit.has_manifest("r", image.digest)
        finally:
            await kit.registry.close()

    run(scenario)


def test_reachable_indexes_children_and_referrers_survive(tmp_path: Path,
                                                          database_url: str) -> None:
    async def scenario() -> None:
        kit = await open_kit(tmp_path, database_url)
        try:
            arm, amd = image_manifest([random_bytes(100)]), image_manifest([random_bytes(100)])
            inner = index_manifest([arm, amd])
            outer = index_manifest([inner, image_manifest([random_bytes(100)])])
            await kit.push("r", outer, "multi")
            signature = artifact_manifest("application/vnd.test.signature", subject=arm,
                                          layers=[random_bytes(64)])
            await kit.push("r", signature)
            sbom = artifact_manifest("application/vnd.test.sbom", subject=signature)
            await kit.push("r", sbom)
            orphan_subject = image_manifest([random_bytes(100)])
            await kit.push("r", orphan_subject, "gone")
            await kit.registry.manifests.delete("r", "gone")  # untagged, unreachable

            report = await kit.gc(delete_untagged=True)
            assert report.manifests_removed == 1
            for manifest in (outer, inner, arm, amd, signature, sbom, *outer.children):
                assert await kit.has_manifest("r", manifest.digest), manifest.document
            files = kit.blob_files()
            for manifest in (arm, amd, signature):
                for blob in manifest.blobs:
                    assert digest_of(blob) in files
            assert not await kit.has_manifest("r", orphan_subject.digest)
            assert digest_of(orphan_subject.blobs[-1]) not in files

            # untagging the outer index makes the whole tree and its referrers garbage
            await kit.registry.manifests.delete("r", "multi")
            report = await kit.gc(delete_untagged=True)
            assert report.manifests_removed == 7
            assert kit.blob_files() == {}
        finally:
            await kit.registry.close()

    run(scenario)


@pytest.mark.parametrize("policy", ["keep", "remove"])
def test_referrers_of_a_deleted_subject_follow_the_policy(tmp_path: Path, policy: str) -> None:
    async def scenario() -> None:
        remove = policy == "remove"
        kit = await open_kit(tmp_path, remove_referrers=remove)
        try:
            image = image_manifest([random_bytes(100)])
            await kit.push("r", image, "v1")
            signature = artifact_manifest("application/vnd.test.signature", subject=image)
            await kit.push("r", signature)
            await kit.registry.manifests.delete("r", image.digest)
            assert await kit.has_manifest("r", signature.digest) is not remove
            # GC keeps an orphan referrer under `keep` and removes it under `remove`
            await kit.push("r", image, "v1")
            orphan = artifact_manifest("application/vnd.test.other", subject=image)
            await kit.push("r", orphan)
            await kit.registry.manifests.delete("r", "v1")
            await kit.registry._metadata.delete_manifest("r", image.digest)
            await kit.gc(delete_untagged=True, remove_orphan_referrers=remove)
            assert await kit.has_manifest("r", orphan.digest) is not remove
        finally:
            await kit.registry.close()

    run(scenario)


def test_deleting_an_index_keeps_children_other_manifests_use(tmp_path: Path) -> None:
    async def scenario() -> None:
        kit = await open_kit(tmp_path)
        try:
            shared = image_manifest([random_bytes(100)])
            first = index_manifest([shared])
            second = index_manifest([shared, image_manifest([random_bytes(100)])])
            await kit.push("r", first, "one")
            await kit.push("r", second, "two")
            await kit.registry.manifests.delete("r", first.digest)
            await kit.gc(delete_untagged=True)
            assert await kit.has_manifest("r", shared.digest)
            assert await kit.has_manifest("r", second.digest)
            assert digest_of(shared.blobs[-1]) in kit.blob_files()
        finally:
            await kit.registry.close()

    run(scenario)


def test_manifest_put_after_mark_gets_manifest_blob_unknown(tmp_path: Path,
                                                           database_url: str) -> None:
    async def scenario() -> None:
        kit = await open_kit(tmp_path, database_url)
        try:
            image = image_manifest([random_bytes(100)])
            for blob in image.blobs:
                await kit.push_blob("r", blob)
            marked = await kit.registry.maintenance.gc.mark_blobs_deleting(
                [digest_of(b) for b in image.blobs], FUTURE)
            assert len(marked) == 2
            with pytest.raises(RegistryErrors) as raised:
                await kit.put("r", image, "v1")
            assert all(isinstance(e, ManifestBlobUnknown) for e in raised.value.errors)
            # mounting a marked blob falls back to an upload
            assert not await kit.registry.blobs.mount("other", Digest.parse(marked[0].digest),
                                                      "r")
        finally:
            await kit.registry.close()

    run(scenario)


def test_upload_takes_back_a_marked_blob_and_rewrites_swept_bytes(tmp_path: Path,
                                                                 database_url: str) -> None:
    async def scenario() -> None:
        kit = await open_kit(tmp_path, database_url)
        gc = kit.registry.maintenance.gc
        try:
            data = random_bytes(500)
            digest = await kit.push_blob("r", data)
            # marked, bytes still there: the upload makes the row live; the sweep skips it
            assert await gc.mark_blobs_deleting([digest], FUTURE)
            await kit.push_blob("r", data)
            assert await gc.finish_deletions([digest], _never_remove) == ([], 0)
            assert kit.blob_files()[digest] == len(data)

            # marked and swept: the next upload writes the bytes again
            assert await gc.mark_blobs_deleting([digest], FUTURE)
            swept, freed = await gc.finish_deletions(
                [digest], kit.registry.collector.remove_bytes)
            assert [row.digest for row in swept] == [digest] and freed == len(data)
            assert digest not in kit.blob_files()
            await kit.push_blob("r", data)
            assert kit.blob_files()[digest] == len(data)
            assert await kit.linked("r", digest)
            image = image_manifest([data])
            await kit.push("r", image, "v1")
            assert (await kit.registry.checker.run()).ok
        finally:
            await kit.registry.close()

    run(scenario)


async def _never_remove(digests: list[str]) -> int:
    raise AssertionError(f"removed live blobs {digests}")


def test_interrupted_sweep_is_finished_by_the_next_run(tmp_path: Path) -> None:
    async def scenario() -> None:
        kit = await open_kit(tmp_path)
        gc = kit.registry.maintenance.gc
        try:
            digests = [await kit.push_blob("r", random_bytes(100 + i)) for i in range(4)]
            await gc.mark_blobs_deleting(digests, FUTURE)

            async def crash(digests: list[str]) -> int:
                await kit.registry.collector.remove_bytes(digests)
                raise RuntimeError("killed after the unlink, before the commit")

            with pytest.raises(RuntimeError):
                await gc.finish_deletions(digests, crash)
            assert len(await gc.pending_deletions(10)) == 4
            report = await kit.gc()
            assert report.resumed == 4 and report.blobs_removed == 4
            assert await gc.pending_deletions(10) == []
            assert kit.blob_files() == {}
        finally:
            await kit.registry.close()

    run(scenario)


def test_grace_period_follows_the_latest_push(tmp_path: Path) -> None:
    async def scenario() -> None:
        kit = await open_kit(tmp_path)
        try:
            data = random_bytes(100)
            digest = await kit.push_blob("r", data)
            async with kit.engines.begin_write() as connection:
                old = datetime.now(UTC) - timedelta(days=2)
                await connection.execute(update(blobs).values(created_at=old))
            await kit.push_blob("r", data)  # pushed again: the link is young again
            assert (await kit.gc(grace=3600)).blobs_removed == 0
            async with kit.engines.read.connect() as connection:
                assert await connection.scalar(select(blobs.c.state)) == "live"
            assert digest in kit.blob_files()
        finally:
            await kit.registry.close()

    run(scenario)


def test_mark_waits_for_a_manifest_put_holding_the_blob_row(tmp_path: Path,
                                                            database_url: str) -> None:
    """The interleaving a real PUT makes: it locks the blob row, GC's mark waits, and then
    sees the committed reference with a fresh statement and keeps the blob."""

    async def scenario() -> None:
        kit = await open_kit(tmp_path, database_url)
        try:
            digest = await kit.push_blob("r", random_bytes(100))
            engines = kit.engines
            async with engines.begin_write() as connection:
                await connection.execute(
                    select(blobs.c.digest).where(blobs.c.digest == digest)
                    .with_for_update(read=True))
                mark = asyncio.create_task(
                    kit.registry.maintenance.gc.mark_blobs_deleting([digest], FUTURE))
                await asyncio.sleep(0.5)
                assert not mark.done(), "GC did not wait for the row lock"
                manifest_id = (await connection.execute(
                    insert(manifests).values(
                        repository_id=select(repositories.c.id)
                        .where(repositories.c.name == "r").scalar_subquery(),
                        digest="sha256:" + "9" * 64, media_type="x", size=1,
                        content=b"{}", created_at=datetime.now(UTC))
                    .returning(manifests.c.id))).scalar_one()
                await connection.execute(insert(manifest_references).values(
                    manifest_id=manifest_id, digest=digest, kind="blob"))
            assert await mark == []
            assert await kit.linked("r", digest)
        finally:
            await kit.registry.close()

    run(scenario)
