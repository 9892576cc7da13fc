"""The metadata store on a migrated SQLite database: transactions commit whole or not at all."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import pytest

from dockyard.metadata import migrate
from dockyard.metadata.engine import create_engines
from dockyard.metadata.records import ManifestWrite, MissingReferences
from dockyard.metadata.store import MetadataStore

T = TypeVar("T")
CONFIG = "sha256:" + "c" * 64
LAYER = "sha256:" + "1" * 64


def run_with_store(tmp_path: Path, scenario: Callable[[MetadataStore], Awaitable[T]]) -> T:
    async def main() -> T:
        engines = create_engines(f"sqlite+aiosqlite:///{tmp_path / 'meta.db'}")
        await migrate.upgrade(engines.write)
        store = MetadataStore(engines)
        try:
            return await scenario(store)
        finally:
            await store.close()

    return asyncio.run(main())


def manifest(digest: str, *, tags: tuple[str, ...] = (), blobs: tuple[str, ...] = (CONFIG,),
             children: tuple[str, ...] = (), subject: str | None = None) -> ManifestWrite:
    return ManifestWrite(
        digest=digest, media_type="application/vnd.oci.image.manifest.v1+json",
        content=digest.encode(), artifact_type=None, subject_digest=subject, annotations=None,
        blob_digests=blobs, child_digests=children, tags=tags,
    )


def test_manifest_with_missing_blobs_commits_nothing(tmp_path: Path) -> None:
    async def scenario(store: MetadataStore) -> None:
        await store.link_blob("repo", CONFIG, 10)
        with pytest.raises(MissingReferences) as raised:
            await store.put_manifest("repo", manifest("sha256:" + "a" * 64, tags=("v1",),
                                                      blobs=(CONFIG, LAYER)))
        assert raised.value.blobs == [LAYER]
        assert await store.resolve_tag("repo", "v1") is None
        assert await store.get_manifest("repo", "sha256:" + "a" * 64) is None

    run_with_store(tmp_path, scenario)


def test_tags_move_and_list_in_byte_order(tmp_path: Path) -> None:
    async def scenario(store: MetadataStore) -> None:
        await store.link_blob("repo", CONFIG, 10)
        first, second = "sha256:" + "a" * 64, "sha256:" + "b" * 64
        await store.put_manifest("repo", manifest(first, tags=("latest", "B", "a")))
        await store.put_manifest("repo", manifest(second, tags=("latest",)))
        moved = await store.resolve_tag("repo", "latest")
        assert moved is not None and moved.digest == second
        assert await store.list_tags("repo", None, 10) == ["B", "a", "latest"]
        assert await store.list_tags("repo", "B", 1) == ["a"]
        assert await store.list_tags("missing", None, 10) is None

    run_with_store(tmp_path, scenario)


def test_blob_links_are_per_repository(tmp_path: Path) -> None:
    async def scenario(store: MetadataStore) -> None:
        await store.link_blob("one", LAYER, 42)
        assert await store.linked_blob_size("one", LAYER) == 42
        assert await store.linked_blob_size("two", LAYER) is None
        with pytest.raises(MissingReferences):
            await store.put_manifest("two", manifest("sha256:" + "d" * 64, blobs=(LAYER,)))
        assert await store.unlink_blob("one", LAYER)
        assert not await store.unlink_blob("one", LAYER)

    run_with_store(tmp_path, scenario)


def test_delete_manifest_takes_its_tags(tmp_path: Path) -> None:
    async def scenario(store: MetadataStore) -> None:
        await store.link_blob("repo", CONFIG, 10)
        digest = "sha256:" + "e" * 64
        await store.put_manifest("repo", manifest(digest, tags=("x", "y")))
        assert await store.delete_tag("repo", "x")
        assert await store.list_tags("repo", None, 10) == ["y"]
        assert await store.delete_manifest("repo", digest)
        assert await store.list_tags("repo", None, 10) == []
        assert not await store.delete_manifest("repo", digest)

    run_with_store(tmp_path, scenario)


def test_referrers_filter_and_page(tmp_path: Path) -> None:
    async def scenario(store: MetadataStore) -> None:
        await store.link_blob("repo", CONFIG, 10)
        subject = "sha256:" + "f" * 64
        digests = ["sha256:" + c * 64 for c in "123"]
        for digest in digests:
            await store.put_manifest("repo", manifest(digest, subject=subject))
        listed = await store.list_referrers("repo", subject, None, None, 2)
        assert [r.digest for r in listed] == digests[:2]
        rest = await store.list_referrers("repo", subject, None, digests[1], 2)
        assert [r.digest for r in rest] == digests[2:]
        assert await store.list_referrers("repo", subject, "other/type", None, 10) == []

    run_with_store(tmp_path, scenario)


def test_upload_completion_links_the_blob(tmp_path: Path) -> None:
    async def scenario(store: MetadataStore) -> None:
        await store.create_upload("u", "repo")
        record = await store.get_upload("u")
        assert record is not None and record.repository == "repo"
        await store.complete_upload("u", "repo", LAYER, 7)
        assert await store.get_upload("u") is None
        assert await store.linked_blob_size("repo", LAYER) == 7
        assert await store.list_repositories(None, 10) == ["repo"]

    run_with_store(tmp_path, scenario)


def test_migration_is_idempotent_and_refuses_unknown_schema(tmp_path: Path) -> None:
    async def main() -> None:
        engines = create_engines(f"sqlite+aiosqlite:///{tmp_path / 'meta.db'}")
        try:
            await migrate.upgrade(engines.write)
            await migrate.upgrade(engines.write)
            async with engines.write.begin() as connection:
                await connection.exec_driver_sql(
                    "UPDATE alembic_version SET version_num = 'from-the-future'"
                )
            with pytest.raises(migrate.UnknownSchema):
                await migrate.upgrade(engines.write)
        finally:
            await engines.dispose()

    asyncio.run(main())
