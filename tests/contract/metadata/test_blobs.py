"""Blob links: per repository, made by uploads and mounts, removed by unlinking."""

from __future__ import annotations

import pytest

from dockyard.metadata.records import MissingReferences
from tests.contract.metadata.conftest import Implementation, Stores
from tests.contract.metadata.kit import LAYER, digest, link, manifest


def test_blob_links_are_per_repository(stores: Implementation) -> None:
    async def scenario(s: Stores) -> None:
        await link(s.metadata, "one", LAYER, 42)
        assert await s.metadata.linked_blob_size("one", LAYER) == 42
        assert await s.metadata.linked_blob_size("two", LAYER) is None
        with pytest.raises(MissingReferences):
            await s.metadata.put_manifest("two", manifest(digest("d"), blobs=(LAYER,)))
        assert await s.metadata.unlink_blob("one", LAYER)
        assert await s.metadata.linked_blob_size("one", LAYER) is None
        assert not await s.metadata.unlink_blob("one", LAYER)

    stores.run(scenario)


def test_a_mount_links_only_what_the_source_holds(stores: Implementation) -> None:
    async def scenario(s: Stores) -> None:
        await link(s.metadata, "source", LAYER, 42)
        assert await s.metadata.mount_blob("target", LAYER, "elsewhere") is None
        assert await s.metadata.mount_blob("target", digest("9"), "source") is None
        assert await s.metadata.linked_blob_size("target", LAYER) is None
        assert await s.metadata.mount_blob("target", LAYER, "source") == 42
        assert await s.metadata.linked_blob_size("target", LAYER) == 42
        assert await s.metadata.repository_exists("target")

    stores.run(scenario)
