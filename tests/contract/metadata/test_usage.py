"""Storage use: deduplicated (what is stored) and logical (as if nothing were shared)."""

from __future__ import annotations

from tests.contract.metadata.conftest import Implementation, Stores
from tests.contract.metadata.kit import digest, link, manifest

SHARED, ONE, TWO = digest("5"), digest("6"), digest("7")


def test_usage_is_deduplicated_and_logical(stores: Implementation) -> None:
    async def scenario(s: Stores) -> None:
        await link(s.metadata, "one", SHARED, 1000)
        await link(s.metadata, "one", ONE, 100)
        await link(s.metadata, "two", SHARED, 1000)
        await link(s.metadata, "two", TWO, 200)
        await s.metadata.put_manifest("one", manifest(digest("a"), blobs=(SHARED, ONE),
                                                      size=50))
        await s.metadata.put_manifest("two", manifest(digest("b"), blobs=(SHARED, TWO),
                                                      size=60))
        await link(s.metadata, "empty", ONE, 100)
        assert await s.metadata.unlink_blob("empty", ONE)

        usage = await s.maintenance.usage.usage()
        by_name = {item.name: item for item in usage.repositories}
        assert list(by_name) == ["empty", "one", "two"]
        one, two = by_name["one"], by_name["two"]
        assert (one.blobs, one.manifests, one.logical_bytes, one.unique_bytes) == (
            2, 1, 1150, 150)
        assert (two.blobs, two.manifests, two.logical_bytes, two.unique_bytes) == (
            2, 1, 1260, 260)
        assert (by_name["empty"].blobs, by_name["empty"].logical_bytes) == (0, 0)
        assert (usage.blobs, usage.stored_bytes, usage.logical_bytes) == (3, 1410, 2410)

        single = await s.maintenance.usage.usage("two")
        assert [item.name for item in single.repositories] == ["two"]
        assert (single.blobs, single.stored_bytes, single.logical_bytes) == (2, 260, 1260)
        nothing = await s.maintenance.usage.usage("missing")
        assert (nothing.repositories, nothing.blobs, nothing.stored_bytes) == ([], 0, 0)

    stores.run(scenario)


def test_a_blob_another_repository_references_is_not_unique(stores: Implementation) -> None:
    async def scenario(s: Stores) -> None:
        await link(s.metadata, "one", SHARED, 1000)
        await s.metadata.mount_blob("two", SHARED, "one")
        await s.metadata.put_manifest("two", manifest(digest("b"), blobs=(SHARED,), size=60))
        assert await s.metadata.unlink_blob("two", SHARED)  # referenced there, not linked
        usage = await s.maintenance.usage.usage("one")
        (one,) = usage.repositories
        assert (one.logical_bytes, one.unique_bytes) == (1000, 0)

    stores.run(scenario)


def test_a_cached_manifest_counts_only_what_was_fetched(stores: Implementation) -> None:
    async def scenario(s: Stores) -> None:
        await s.metadata.put_manifest("hub/app", manifest(digest("a"), blobs=(ONE, TWO),
                                                          size=50, cached=True))
        (app,) = (await s.maintenance.usage.usage("hub/app")).repositories
        assert (app.blobs, app.manifests, app.logical_bytes, app.unique_bytes) == (
            0, 1, 50, 50), "its blobs are not here yet"
        await link(s.metadata, "hub/app", ONE, 100)
        usage = await s.maintenance.usage.usage()
        (app,) = usage.repositories
        assert (app.blobs, app.logical_bytes, app.unique_bytes) == (1, 150, 150)
        assert (usage.blobs, usage.stored_bytes) == (1, 150)

    stores.run(scenario)
