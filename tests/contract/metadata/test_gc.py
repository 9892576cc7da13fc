"""GC's steps: candidates, marking under the row lock, sweeping, manifests, and the cache."""

from __future__ import annotations

from dockyard.metadata.interfaces import GCStore
from tests.contract.metadata.conftest import Implementation, Stores
from tests.contract.metadata.kit import CONFIG, FUTURE, LAYER, PAST, digest, freeing, link, manifest


async def _manifest_ids(gc: GCStore, repository: str) -> tuple[int, dict[str, int]]:
    """The repository's id, and its manifests' ids by digest."""
    ((repository_id, name),) = await gc.repositories()
    assert name == repository
    graph = await gc.manifest_graph(repository_id, name, PAST)
    return repository_id, {node.digest: node.id for node in graph.nodes}


def test_only_unreferenced_blobs_without_young_links_are_garbage(
        stores: Implementation) -> None:
    async def scenario(s: Stores) -> None:
        gc = s.maintenance.gc
        await link(s.metadata, "repo", CONFIG, 10)
        await link(s.metadata, "repo", LAYER, 20)
        await s.metadata.put_manifest("repo", manifest(digest("a"), blobs=(CONFIG,)))
        assert await gc.garbage_blobs(PAST, None, 10) == []
        (garbage,) = await gc.garbage_blobs(FUTURE, None, 10)
        assert (garbage.digest, garbage.size) == (LAYER, 20)
        assert await gc.garbage_blobs(FUTURE, LAYER, 10) == []

    stores.run(scenario)


def test_marking_unlinks_garbage_and_sweeping_removes_it(stores: Implementation) -> None:
    async def scenario(s: Stores) -> None:
        gc = s.maintenance.gc
        await link(s.metadata, "repo", CONFIG, 10)
        await link(s.metadata, "repo", LAYER, 20)
        await s.metadata.put_manifest("repo", manifest(digest("a"), blobs=(CONFIG,)))
        assert await s.metadata.linked_blob_size("repo", LAYER) == 20  # a cache keeps it

        assert await gc.mark_blobs_deleting([LAYER, CONFIG], PAST) == [], "young link: kept"
        marked = await gc.mark_blobs_deleting([LAYER, CONFIG], FUTURE)
        assert [(row.digest, row.size) for row in marked] == [(LAYER, 20)]
        assert await s.metadata.linked_blob_size("repo", LAYER) is None
        assert await s.metadata.linked_blob_size("repo", CONFIG) == 10
        assert await gc.garbage_blobs(FUTURE, None, 10) == [], "marked: not live"
        assert await gc.pending_deletions(10) == [LAYER]

        removed: list[list[str]] = []

        async def remove(digests: list[str]) -> int:
            removed.append(digests)
            return 20

        done, freed = await gc.finish_deletions([LAYER, CONFIG], remove)
        assert ([row.digest for row in done], freed, removed) == ([LAYER], 20, [[LAYER]])
        assert await gc.pending_deletions(10) == []
        assert await gc.finish_deletions([LAYER], remove) == ([], 0)

    stores.run(scenario)


def test_an_upload_takes_back_a_marked_blob(stores: Implementation) -> None:
    async def scenario(s: Stores) -> None:
        gc = s.maintenance.gc
        await link(s.metadata, "repo", LAYER, 20)
        assert await gc.mark_blobs_deleting([LAYER], FUTURE)
        await link(s.metadata, "other", LAYER, 20)
        assert await gc.pending_deletions(10) == []
        assert await gc.finish_deletions([LAYER], freeing(10)) == ([], 0)
        assert await s.metadata.linked_blob_size("other", LAYER) == 20
        assert await s.metadata.linked_blob_size("repo", LAYER) is None
        assert await s.metadata.mount_blob("repo", LAYER, "other") == 20

    stores.run(scenario)


def test_a_marked_blob_cannot_be_mounted(stores: Implementation) -> None:
    async def scenario(s: Stores) -> None:
        await link(s.metadata, "repo", LAYER, 20)
        assert await s.maintenance.gc.mark_blobs_deleting([LAYER], FUTURE)
        assert await s.metadata.mount_blob("other", LAYER, "repo") is None

    stores.run(scenario)


def test_the_manifest_graph_shows_tags_recency_and_children(stores: Implementation) -> None:
    async def scenario(s: Stores) -> None:
        gc = s.maintenance.gc
        await link(s.metadata, "repo", CONFIG, 10)
        child, index, referrer = digest("a"), digest("b"), digest("c")
        await s.metadata.put_manifest("repo", manifest(child, size=5))
        await s.metadata.put_manifest("repo", manifest(index, blobs=(), children=(child,),
                                                       tags=("v1",)))
        await s.metadata.put_manifest("repo", manifest(referrer, subject=child))
        ((repository_id, name),) = await gc.repositories()
        assert name == "repo"
        graph = await gc.manifest_graph(repository_id, name, PAST)
        nodes = {node.digest: node for node in graph.nodes}
        assert set(nodes) == {child, index, referrer}
        assert [node.digest for node in graph.nodes if node.tagged] == [index]
        assert all(node.recent for node in graph.nodes)
        assert nodes[referrer].subject == child and nodes[child].size == 5
        assert graph.children == {nodes[index].id: [child]}
        old = await gc.manifest_graph(repository_id, name, FUTURE)
        assert not any(node.recent for node in old.nodes)

    stores.run(scenario)


def test_unreachable_manifests_go_unless_tagged_young_or_listed(
        stores: Implementation) -> None:
    async def scenario(s: Stores) -> None:
        gc = s.maintenance.gc
        await link(s.metadata, "repo", CONFIG, 10)
        child, index, tagged, loose = digest("a"), digest("b"), digest("c"), digest("d")
        for write in (manifest(child), manifest(index, blobs=(), children=(child,)),
                      manifest(tagged, tags=("v1",)), manifest(loose)):
            await s.metadata.put_manifest("repo", write)
        repository_id, ids = await _manifest_ids(gc, "repo")
        for known in (child, loose):
            assert await s.metadata.get_manifest("repo", known) is not None  # cached
        everything = [ids[index], ids[child], ids[tagged], ids[loose]]

        assert await gc.delete_unreachable_manifests(repository_id, everything, PAST) == []
        freed = await gc.blobs_freed_by([ids[loose]], FUTURE)
        assert freed == [], "CONFIG stays referenced by the others"
        assert await gc.delete_unreachable_manifests(repository_id, [ids[child]],
                                                     FUTURE) == [], "listed by the index"
        deleted = await gc.delete_unreachable_manifests(
            repository_id, [ids[loose], ids[index], ids[child], ids[tagged]], FUTURE)
        assert [item.digest for item in deleted] == [loose, index, child]
        for gone in (loose, index, child):
            assert await s.metadata.get_manifest("repo", gone) is None
        assert await s.metadata.resolve_tag("repo", "v1") is not None
        assert [row.digest for row in await gc.garbage_blobs(FUTURE, None, 10)] == []

    stores.run(scenario)


def test_a_dry_run_counts_the_blobs_deleting_manifests_would_free(
        stores: Implementation) -> None:
    async def scenario(s: Stores) -> None:
        gc = s.maintenance.gc
        await link(s.metadata, "repo", CONFIG, 10)
        await link(s.metadata, "repo", LAYER, 20)
        await s.metadata.put_manifest("repo", manifest(digest("a"), blobs=(CONFIG, LAYER)))
        await s.metadata.put_manifest("repo", manifest(digest("b"), blobs=(CONFIG,)))
        _, ids = await _manifest_ids(gc, "repo")
        freed = await gc.blobs_freed_by([ids[digest("a")]], FUTURE)
        assert [(row.digest, row.size) for row in freed] == [(LAYER, 20)]
        assert await gc.blobs_freed_by([ids[digest("a")]], PAST) == [], "young links stay"
        assert await gc.blobs_freed_by([], FUTURE) == []
        both = await gc.blobs_freed_by(list(ids.values()), FUTURE)
        assert sorted(row.digest for row in both) == sorted([CONFIG, LAYER])

    stores.run(scenario)


def test_a_cached_manifest_keeps_the_blobs_linked_later_until_it_is_evicted(
        stores: Implementation) -> None:
    async def scenario(s: Stores) -> None:
        gc = s.maintenance.gc
        image = digest("a")
        await s.metadata.put_manifest("repo", manifest(image, blobs=(CONFIG, LAYER),
                                                       tags=("v1",), cached=True))
        assert await gc.garbage_blobs(FUTURE, None, 10) == [], "absent blobs are no garbage"
        await link(s.metadata, "repo", LAYER, 20)  # fetched when a client asked for it
        assert await gc.garbage_blobs(FUTURE, None, 10) == []
        assert await gc.mark_blobs_deleting([LAYER], FUTURE) == [], "referenced: kept"
        assert await s.metadata.linked_blob_size("repo", LAYER) == 20

        assert await s.maintenance.mirror.evict("repo", image)
        assert await s.metadata.linked_blob_size("repo", LAYER) is None
        (garbage,) = await gc.garbage_blobs(PAST, None, 10)
        assert garbage.digest == LAYER, "unlinked: garbage whatever the grace period"
        assert [row.digest for row in await gc.mark_blobs_deleting([LAYER], PAST)] == [LAYER]
        done, freed = await gc.finish_deletions([LAYER], freeing(20))
        assert ([row.digest for row in done], freed) == ([LAYER], 20)

    stores.run(scenario)


def test_gc_deletes_a_cached_manifest_that_was_pulled(stores: Implementation) -> None:
    async def scenario(s: Stores) -> None:
        gc = s.maintenance.gc
        index, child = digest("a"), digest("b")
        await s.metadata.put_manifest("repo", manifest(child, cached=True))
        await s.metadata.put_manifest("repo", manifest(index, blobs=(), children=(child,),
                                                       cached=True))
        await s.maintenance.mirror.mark_pulled("repo", [index, child])
        repository_id, ids = await _manifest_ids(gc, "repo")
        deleted = await gc.delete_unreachable_manifests(
            repository_id, [ids[index], ids[child]], FUTURE)
        assert [item.digest for item in deleted] == [index, child]
        assert await s.maintenance.mirror.eviction_candidates("", None, 10) == []

    stores.run(scenario)
