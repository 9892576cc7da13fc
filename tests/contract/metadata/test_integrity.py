"""What the integrity check reads, and the repair's unlinking (with GC's sweep)."""

from __future__ import annotations

from tests.contract.metadata.conftest import Implementation, Stores
from tests.contract.metadata.kit import CONFIG, LAYER, digest, freeing, link, manifest


def test_live_blobs_count_and_page(stores: Implementation) -> None:
    async def scenario(s: Stores) -> None:
        integrity = s.maintenance.integrity
        assert await integrity.count_blobs() == (0, 0)
        await link(s.metadata, "repo", LAYER, 20)
        await link(s.metadata, "repo", CONFIG, 10)
        assert await integrity.count_blobs() == (2, 30)
        first = await integrity.live_blobs(None, 1)
        assert [(row.digest, row.size) for row in first] == [(LAYER, 20)]
        assert [row.digest for row in await integrity.live_blobs(LAYER, 10)] == [CONFIG]
        assert await integrity.is_live(CONFIG)
        assert not await integrity.is_live(digest("9"))
        assert await integrity.known_blobs([CONFIG, digest("9")]) == {CONFIG}

    stores.run(scenario)


def test_dangling_references_name_missing_blobs_and_children(stores: Implementation) -> None:
    async def scenario(s: Stores) -> None:
        integrity = s.maintenance.integrity
        await link(s.metadata, "repo", CONFIG, 10)
        child, index = digest("a"), digest("b")
        await s.metadata.put_manifest("repo", manifest(child))
        await s.metadata.put_manifest("repo", manifest(index, blobs=(), children=(child,)))
        assert await integrity.dangling_references(10) == []
        assert await s.metadata.unlink_blob("repo", CONFIG)
        assert await s.metadata.delete_manifest("repo", child)
        await link(s.metadata, "repo", LAYER, 1)
        await s.metadata.put_manifest("repo", manifest(digest("c"), blobs=(LAYER,)))
        found = await integrity.dangling_references(10)
        assert [(d.repository, d.manifest, d.digest, d.kind) for d in found] == [
            ("repo", index, child, "manifest")]
        assert await s.metadata.unlink_blob("repo", LAYER)
        found = await integrity.dangling_references(1)
        assert [(d.manifest, d.digest, d.kind) for d in found] == [(index, child, "manifest")]
        assert len(await integrity.dangling_references(10)) == 2

    stores.run(scenario)


def test_a_cached_manifest_misses_blobs_without_dangling(stores: Implementation) -> None:
    async def scenario(s: Stores) -> None:
        integrity = s.maintenance.integrity
        image, index = digest("a"), digest("b")
        await s.metadata.put_manifest("repo", manifest(image, blobs=(CONFIG, LAYER),
                                                       cached=True))
        await s.metadata.put_manifest("repo", manifest(index, blobs=(), children=(
            image, digest("c")), cached=True))
        assert await integrity.dangling_references(10) == [], "fetched when asked for"
        await link(s.metadata, "repo", CONFIG, 10)
        await link(s.metadata, "repo", LAYER, 20)
        await s.metadata.put_manifest("repo", manifest(image, blobs=(CONFIG, LAYER)))
        assert await s.metadata.unlink_blob("repo", LAYER)
        found = await integrity.dangling_references(10)
        assert [(d.manifest, d.digest, d.kind) for d in found] == [(image, LAYER, "blob")], (
            "pushed whole over its cached copy: a missing blob is damage again")

    stores.run(scenario)


def test_a_dropped_blob_is_unlinked_everywhere_and_swept(stores: Implementation) -> None:
    async def scenario(s: Stores) -> None:
        integrity = s.maintenance.integrity
        await link(s.metadata, "one", LAYER, 20)
        await link(s.metadata, "two", LAYER, 20)
        await s.metadata.put_manifest("one", manifest(digest("a"), blobs=(LAYER,)))
        assert await s.metadata.linked_blob_size("two", LAYER) == 20  # a cache keeps it
        assert await integrity.drop_blob(LAYER), "dropped though a manifest references it"
        assert not await integrity.drop_blob(LAYER)
        assert await s.metadata.linked_blob_size("one", LAYER) is None
        assert await s.metadata.linked_blob_size("two", LAYER) is None
        assert not await integrity.is_live(LAYER)
        assert await integrity.known_blobs([LAYER]) == {LAYER}, "marked until swept"
        assert await s.maintenance.gc.pending_deletions(10) == [LAYER]
        done, freed = await integrity.finish_deletions([LAYER], freeing(20))
        assert ([row.digest for row in done], freed) == ([LAYER], 20)
        assert await integrity.known_blobs([LAYER]) == set()

    stores.run(scenario)
