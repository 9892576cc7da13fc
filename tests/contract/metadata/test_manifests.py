"""Manifests, tags and referrers: a PUT commits whole or not at all, reads follow writes."""

from __future__ import annotations

import pytest

from dockyard.metadata.records import MissingReferences
from tests.contract.metadata.conftest import Implementation, Stores
from tests.contract.metadata.kit import CONFIG, FUTURE, LAYER, PAST, digest, link, manifest


def test_a_manifest_with_missing_blobs_commits_nothing(stores: Implementation) -> None:
    async def scenario(s: Stores) -> None:
        await link(s.metadata, "repo", CONFIG, 10)
        with pytest.raises(MissingReferences) as raised:
            await s.metadata.put_manifest("repo", manifest(digest("a"), tags=("v1",),
                                                           blobs=(CONFIG, LAYER)))
        assert raised.value.blobs == [LAYER]
        assert raised.value.manifests == []
        assert await s.metadata.resolve_tag("repo", "v1") is None
        assert await s.metadata.get_manifest("repo", digest("a")) is None

    stores.run(scenario)


def test_an_index_needs_its_children_in_the_same_repository(stores: Implementation) -> None:
    async def scenario(s: Stores) -> None:
        await link(s.metadata, "one", CONFIG, 10)
        await link(s.metadata, "two", CONFIG, 10)
        await s.metadata.put_manifest("one", manifest(digest("a")))
        index = manifest(digest("b"), blobs=(), children=(digest("a"),))
        with pytest.raises(MissingReferences) as raised:
            await s.metadata.put_manifest("two", index)
        assert raised.value.manifests == [digest("a")]
        await s.metadata.put_manifest("one", index)
        assert await s.metadata.get_manifest("one", digest("b")) is not None

    stores.run(scenario)


def test_a_sparse_index_needs_only_its_required_children(stores: Implementation) -> None:
    async def scenario(s: Stores) -> None:
        integrity, gc = s.maintenance.integrity, s.maintenance.gc
        await link(s.metadata, "repo", CONFIG, 10)
        required, optional, index = digest("a"), digest("b"), digest("c")
        sparse = manifest(index, blobs=(), children=(required,), optional_children=(optional,),
                          tags=("v1",))
        with pytest.raises(MissingReferences) as raised:
            await s.metadata.put_manifest("repo", sparse)
        assert raised.value.manifests == [required]
        await s.metadata.put_manifest("repo", manifest(required))
        await s.metadata.put_manifest("repo", sparse)
        by_tag = await s.metadata.resolve_tag("repo", "v1")
        assert by_tag is not None and by_tag.digest == index
        assert await integrity.dangling_references(10) == [], "an absent optional child is fine"
        await s.metadata.put_manifest("repo", manifest(optional))
        ((repository_id, name),) = await gc.repositories()
        graph = await gc.manifest_graph(repository_id, name, PAST)
        ids = {node.digest: node.id for node in graph.nodes}
        assert sorted(graph.children[ids[index]]) == [required, optional]
        listed = [ids[optional], ids[required]]
        assert await gc.delete_unreachable_manifests(repository_id, listed, FUTURE) == []

    stores.run(scenario)


def test_a_cached_manifest_is_stored_before_its_blobs_and_children(
        stores: Implementation) -> None:
    async def scenario(s: Stores) -> None:
        gc = s.maintenance.gc
        child, index, referrer = digest("a"), digest("b"), digest("c")
        await s.metadata.put_manifest("repo", manifest(
            index, blobs=(), children=(child,), optional_children=(digest("d"),),
            tags=("v1",), cached=True))
        await s.metadata.put_manifest("repo", manifest(
            referrer, blobs=(CONFIG, LAYER), subject=child, cached=True))
        by_tag = await s.metadata.resolve_tag("repo", "v1")
        assert by_tag is not None and by_tag.digest == index
        assert await s.metadata.get_manifest("repo", referrer) is not None
        assert [r.digest for r in await s.metadata.list_referrers(
            "repo", child, None, None, 10)] == [referrer]
        ((repository_id, name),) = await gc.repositories()
        graph = await gc.manifest_graph(repository_id, name, PAST)
        ids = {node.digest: node.id for node in graph.nodes}
        assert sorted(graph.children[ids[index]]) == [child, digest("d")]
        await link(s.metadata, "repo", CONFIG, 10)
        await s.metadata.put_manifest("repo", manifest(child, cached=True))
        with pytest.raises(MissingReferences) as raised:
            await s.metadata.put_manifest("repo", manifest(digest("e"), blobs=(LAYER,)))
        assert raised.value.blobs == [LAYER], "a push still needs its blobs"

    stores.run(scenario)


def test_a_stored_manifest_reads_back_by_digest_and_tag(stores: Implementation) -> None:
    async def scenario(s: Stores) -> None:
        await link(s.metadata, "repo", CONFIG, 10)
        await s.metadata.put_manifest("repo", manifest(digest("a"), tags=("v1",)))
        for _ in range(2):  # a cache answers the second time: the same answer
            by_digest = await s.metadata.get_manifest("repo", digest("a"))
            by_tag = await s.metadata.resolve_tag("repo", "v1")
            assert by_digest == by_tag
            assert by_digest is not None
            assert (by_digest.digest, by_digest.content) == (digest("a"), digest("a").encode())
        assert await s.metadata.get_manifest("other", digest("a")) is None
        assert await s.metadata.repository_exists("repo")
        assert not await s.metadata.repository_exists("other")

    stores.run(scenario)


def test_tags_move_and_list_in_byte_order(stores: Implementation) -> None:
    async def scenario(s: Stores) -> None:
        await link(s.metadata, "repo", CONFIG, 10)
        first, second = digest("a"), digest("b")
        await s.metadata.put_manifest("repo", manifest(first, tags=("latest", "B", "a")))
        seen = await s.metadata.resolve_tag("repo", "latest")
        assert seen is not None and seen.digest == first
        await s.metadata.put_manifest("repo", manifest(second, tags=("latest",)))
        moved = await s.metadata.resolve_tag("repo", "latest")
        assert moved is not None and moved.digest == second
        assert await s.metadata.list_tags("repo", None, 10) == ["B", "a", "latest"]
        assert await s.metadata.list_tags("repo", "B", 1) == ["a"]
        assert await s.metadata.list_tags("missing", None, 10) is None

    stores.run(scenario)


def test_deleting_a_manifest_takes_its_tags(stores: Implementation) -> None:
    async def scenario(s: Stores) -> None:
        await link(s.metadata, "repo", CONFIG, 10)
        await s.metadata.put_manifest("repo", manifest(digest("e"), tags=("x", "y")))
        assert await s.metadata.resolve_tag("repo", "x") is not None
        assert await s.metadata.delete_tag("repo", "x")
        assert not await s.metadata.delete_tag("repo", "x")
        assert await s.metadata.resolve_tag("repo", "x") is None
        assert await s.metadata.list_tags("repo", None, 10) == ["y"]
        assert await s.metadata.get_manifest("repo", digest("e")) is not None
        assert await s.metadata.delete_manifest("repo", digest("e"))
        assert await s.metadata.get_manifest("repo", digest("e")) is None
        assert await s.metadata.resolve_tag("repo", "y") is None
        assert await s.metadata.list_tags("repo", None, 10) == []
        assert not await s.metadata.delete_manifest("repo", digest("e"))

    stores.run(scenario)


def test_referrers_filter_and_page(stores: Implementation) -> None:
    async def scenario(s: Stores) -> None:
        await link(s.metadata, "repo", CONFIG, 10)
        subject = digest("f")
        digests = [digest(c) for c in "123"]
        for number, referrer in enumerate(digests):
            kind = "application/sbom" if number == 1 else None
            await s.metadata.put_manifest("repo", manifest(referrer, subject=subject,
                                                           artifact_type=kind))
        listed = await s.metadata.list_referrers("repo", subject, None, None, 2)
        assert [r.digest for r in listed] == digests[:2]
        rest = await s.metadata.list_referrers("repo", subject, None, digests[1], 2)
        assert [r.digest for r in rest] == digests[2:]
        sboms = await s.metadata.list_referrers("repo", subject, "application/sbom", None, 10)
        assert [(r.digest, r.artifact_type) for r in sboms] == [(digests[1], "application/sbom")]
        assert await s.metadata.list_referrers("repo", subject, "other/type", None, 10) == []
        assert await s.metadata.list_referrers("other", subject, None, None, 10) == []

    stores.run(scenario)


def test_deleting_a_subject_removes_its_referrers_only_when_asked(
        stores: Implementation) -> None:
    async def scenario(s: Stores) -> None:
        await link(s.metadata, "repo", CONFIG, 10)
        subject, signature, attestation = digest("a"), digest("b"), digest("c")
        await s.metadata.put_manifest("repo", manifest(subject))
        await s.metadata.put_manifest("repo", manifest(signature, subject=subject))
        await s.metadata.put_manifest("repo", manifest(attestation, subject=signature))
        assert await s.metadata.delete_manifest("repo", subject)
        assert await s.metadata.get_manifest("repo", signature) is not None

        await s.metadata.put_manifest("repo", manifest(subject))
        assert await s.metadata.delete_manifest("repo", subject, remove_referrers=True)
        assert await s.metadata.get_manifest("repo", signature) is None
        assert await s.metadata.get_manifest("repo", attestation) is None

    stores.run(scenario)


def test_repositories_list_in_byte_order_and_page(stores: Implementation) -> None:
    async def scenario(s: Stores) -> None:
        for name in ("b", "a/x", "B"):
            await link(s.metadata, name, CONFIG, 10)
        assert await s.metadata.list_repositories(None, 10) == ["B", "a/x", "b"]
        assert await s.metadata.list_repositories("B", 1) == ["a/x"]

    stores.run(scenario)
