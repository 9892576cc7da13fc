"""A mirror's bookkeeping: tag revalidation, pull times, eviction order, sizes and eviction."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from tests.contract.metadata.conftest import Implementation, Stores
from tests.contract.metadata.kit import CONFIG, LAYER, PAST, digest, link, manifest

HOUR = timedelta(hours=1)
OTHER_LAYER = digest("2")


def test_a_tag_check_reads_back_as_the_same_instant(stores: Implementation) -> None:
    async def scenario(s: Stores) -> None:
        mirror = s.maintenance.mirror
        assert await mirror.tag_checked_at("hub/library/alpine", "latest") is None
        east = timezone(timedelta(hours=5))
        at = datetime(2026, 1, 2, 8, 30, 15, 250, tzinfo=east)
        await mirror.mark_tag_checked("hub/library/alpine", "latest", at)
        checked = await mirror.tag_checked_at("hub/library/alpine", "latest")
        assert checked == at and checked is not None and checked.utcoffset() == timedelta(0)
        assert await mirror.tag_checked_at("hub/library/alpine", "edge") is None
        assert await mirror.tag_checked_at("hub/library/busybox", "latest") is None
        before = datetime.now(UTC)
        await mirror.mark_tag_checked("hub/library/alpine", "latest")
        again = await mirror.tag_checked_at("hub/library/alpine", "latest")
        assert again is not None and again >= before, "checked again: the TTL restarts"
        assert not await s.metadata.repository_exists("hub/library/alpine"), (
            "a tag checked upstream does not make a repository")

    stores.run(scenario)


def test_eviction_takes_the_least_recently_pulled_first(stores: Implementation) -> None:
    async def scenario(s: Stores) -> None:
        mirror = s.maintenance.mirror
        now = datetime.now(UTC)
        old, recent, never = digest("a"), digest("b"), digest("c")
        for image in (old, recent, never):
            await s.metadata.put_manifest("hub/app", manifest(image, cached=True))
        await mirror.mark_pulled("hub/app", [old, recent, digest("f")], now - 3 * HOUR)
        await mirror.mark_pulled("hub/app", [recent], now - HOUR)
        await mirror.mark_pulled("nowhere", [old], now)  # no such repository: nothing
        await mirror.mark_pulled("hub/app", [])

        found = await mirror.eviction_candidates("", None, 10)
        assert [image.digest for image in found] == [old, recent, never], (
            "never pulled counts from when it was cached: now")
        assert [image.repository for image in found] == ["hub/app"] * 3
        assert found[0].last_pulled_at == now - 3 * HOUR
        assert found[1].last_pulled_at == now - HOUR
        assert found[2].last_pulled_at is None
        assert [i.digest for i in await mirror.eviction_candidates("", None, 1)] == [old]
        stale = await mirror.eviction_candidates("", now - 2 * HOUR, 10)
        assert [image.digest for image in stale] == [old]
        assert await mirror.eviction_candidates("", PAST, 10) == []

    stores.run(scenario)


def test_only_cached_roots_are_candidates(stores: Implementation) -> None:
    async def scenario(s: Stores) -> None:
        mirror = s.maintenance.mirror
        child, index, pushed = digest("a"), digest("b"), digest("c")
        await s.metadata.put_manifest("hub/app", manifest(child, cached=True))
        await s.metadata.put_manifest("hub/app", manifest(
            index, blobs=(), children=(child,), cached=True))
        await s.metadata.put_manifest("other", manifest(child, cached=True))
        await link(s.metadata, "hub/app", CONFIG, 10)
        await s.metadata.put_manifest("hub/app", manifest(pushed))
        found = await mirror.eviction_candidates("", None, 10)
        assert sorted((image.repository, image.digest) for image in found) == [
            ("hub/app", index), ("other", child)], "a child goes with its index"

    stores.run(scenario)


def test_a_prefix_means_that_repository_and_those_below_it(stores: Implementation) -> None:
    async def scenario(s: Stores) -> None:
        mirror = s.maintenance.mirror
        names = ["a_b", "a_b/x", "a_b/x/y", "acb/x", "a_bc/x", "z/a_b/x"]
        for name in names:
            await s.metadata.put_manifest(name, manifest(digest("a"), cached=True))

        async def under(prefix: str) -> list[str]:
            found = await mirror.eviction_candidates(prefix, None, 10)
            return sorted(image.repository for image in found)

        assert await under("a_b") == ["a_b", "a_b/x", "a_b/x/y"], "_ is no wildcard"
        assert await under("a_b/") == ["a_b", "a_b/x", "a_b/x/y"]
        assert await under("a_b/x") == ["a_b/x", "a_b/x/y"]
        assert await under("a%") == []
        assert await under("") == sorted(names)

    stores.run(scenario)


def test_sizes_count_stored_blobs_once(stores: Implementation) -> None:
    async def scenario(s: Stores) -> None:
        mirror = s.maintenance.mirror
        amd, arm, index = digest("a"), digest("b"), digest("c")
        await s.metadata.put_manifest("hub/app", manifest(
            amd, blobs=(CONFIG, LAYER), size=100, cached=True))
        await s.metadata.put_manifest("hub/app", manifest(
            arm, blobs=(CONFIG, OTHER_LAYER), size=200, cached=True))
        await s.metadata.put_manifest("hub/app", manifest(
            index, blobs=(), children=(amd, arm), size=50, cached=True))
        (image,) = await mirror.eviction_candidates("hub", None, 10)
        assert image.size == 350, "no blob fetched yet: the manifests alone"
        await link(s.metadata, "hub/app", CONFIG, 10)
        await link(s.metadata, "hub/app", LAYER, 20)
        await link(s.metadata, "other", OTHER_LAYER, 40)  # stored, but not for this image
        (image,) = await mirror.eviction_candidates("hub", None, 10)
        assert image.size == 350 + 10 + 20

        await s.metadata.put_manifest("hub/db", manifest(digest("d"), blobs=(CONFIG,),
                                                         size=7, cached=True))
        await link(s.metadata, "hub/db", CONFIG, 10)
        assert await mirror.cached_bytes("hub") == 350 + 7 + 10 + 20, "CONFIG counted once"
        assert await mirror.cached_bytes("hub/db") == 7 + 10
        assert await mirror.cached_bytes("") == 350 + 7 + 10 + 20 + 40
        assert await mirror.cached_bytes("nothing") == 0

    stores.run(scenario)


def test_evicting_an_index_takes_what_only_it_holds(stores: Implementation) -> None:
    async def scenario(s: Stores) -> None:
        mirror, integrity = s.maintenance.mirror, s.maintenance.integrity
        only, shared, index, other = digest("a"), digest("b"), digest("c"), digest("d")
        for blob, size in ((CONFIG, 10), (LAYER, 20), (OTHER_LAYER, 40)):
            await link(s.metadata, "hub/app", blob, size)
        await link(s.metadata, "hub/keep", LAYER, 20)
        await s.metadata.put_manifest("hub/app", manifest(only, blobs=(CONFIG, LAYER),
                                                          tags=("amd",), cached=True))
        await s.metadata.put_manifest("hub/app", manifest(shared, blobs=(CONFIG, OTHER_LAYER),
                                                          cached=True))
        await s.metadata.put_manifest("hub/app", manifest(
            index, blobs=(), children=(only, shared), tags=("latest", "v1"), cached=True))
        await s.metadata.put_manifest("hub/app", manifest(
            other, blobs=(), children=(shared,), tags=("stable",), cached=True))
        await mirror.mark_pulled("hub/app", [index, only, shared])
        for tag in ("latest", "amd", "stable", "gone-upstream"):
            await mirror.mark_tag_checked("hub/app", tag)
        await mirror.mark_tag_checked("hub/keep", "latest")
        for known in (index, only):
            assert await s.metadata.get_manifest("hub/app", known) is not None  # a cache keeps it
        assert await s.metadata.linked_blob_size("hub/app", LAYER) == 20

        assert await mirror.evict("hub/app", index)
        for gone in (index, only):
            assert await s.metadata.get_manifest("hub/app", gone) is None
        for kept in (shared, other):
            assert await s.metadata.get_manifest("hub/app", kept) is not None
        assert await s.metadata.list_tags("hub/app", None, 10) == ["stable"]
        for tag in ("latest", "amd"):
            assert await mirror.tag_checked_at("hub/app", tag) is None
        for repository, tag in (("hub/app", "stable"), ("hub/app", "gone-upstream"),
                                ("hub/keep", "latest")):
            assert await mirror.tag_checked_at(repository, tag) is not None
        assert await s.metadata.linked_blob_size("hub/app", LAYER) is None
        assert await s.metadata.linked_blob_size("hub/app", CONFIG) == 10, "shared names it"
        assert await s.metadata.linked_blob_size("hub/app", OTHER_LAYER) == 40
        assert await s.metadata.linked_blob_size("hub/keep", LAYER) == 20
        assert await integrity.dangling_references(10) == []
        found = await mirror.eviction_candidates("", None, 10)
        assert [image.digest for image in found] == [other]

        assert not await mirror.evict("hub/app", index)
        assert not await mirror.evict("nowhere", other)
        assert await mirror.evict("hub/app", other)
        assert await s.metadata.list_tags("hub/app", None, 10) == []
        assert await s.metadata.get_manifest("hub/app", shared) is None
        for blob in (CONFIG, OTHER_LAYER):
            assert await s.metadata.linked_blob_size("hub/app", blob) is None

    stores.run(scenario)


def test_a_deleted_manifest_takes_its_pull_time(stores: Implementation) -> None:
    async def scenario(s: Stores) -> None:
        mirror = s.maintenance.mirror
        image = digest("a")
        await s.metadata.put_manifest("hub/app", manifest(image, cached=True))
        await mirror.mark_pulled("hub/app", [image], datetime.now(UTC) - HOUR)
        assert await s.metadata.delete_manifest("hub/app", image)
        await s.metadata.put_manifest("hub/app", manifest(image, cached=True))
        (found,) = await mirror.eviction_candidates("", None, 10)
        assert found.last_pulled_at is None, "cached anew: its old pulls are gone"

    stores.run(scenario)
