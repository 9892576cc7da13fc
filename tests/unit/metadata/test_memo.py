"""Memoized hot reads never outlive a commit, wherever the commit came from."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from dockyard.metadata import migrate
from dockyard.metadata.engine import create_engines
from dockyard.metadata.memo import ReadMemo
from dockyard.metadata.store import SQLMetadataStore
from tests.contract.metadata.kit import CONFIG, link, manifest

FIRST = "sha256:" + "a" * 64
SECOND = "sha256:" + "b" * 64


def test_a_write_through_another_store_is_seen_at_once(tmp_path: Path) -> None:
    """Two stores on one file stand for two worker processes."""

    async def main() -> None:
        url = f"sqlite+aiosqlite:///{tmp_path / 'meta.db'}"
        reader_engines, writer_engines = create_engines(url), create_engines(url)
        await migrate.upgrade(writer_engines.write)
        reader, writer = SQLMetadataStore(reader_engines), SQLMetadataStore(writer_engines)
        try:
            await link(writer, "repo", CONFIG, 10)
            await writer.put_manifest("repo", manifest(FIRST, tags=("latest",)))
            for _ in range(2):  # the second answer comes from the memo
                found = await reader.resolve_tag("repo", "latest")
                assert found is not None and found.digest == FIRST
                assert await reader.list_tags("repo", None, 10) == ["latest"]
                assert await reader.list_repositories(None, 10) == ["repo"]

            await writer.put_manifest("repo", manifest(SECOND, tags=("latest", "v2")))
            await link(writer, "other", CONFIG, 10)

            moved = await reader.resolve_tag("repo", "latest")
            assert moved is not None and moved.digest == SECOND
            assert await reader.list_tags("repo", None, 10) == ["latest", "v2"]
            assert await reader.list_repositories(None, 10) == ["other", "repo"]
            assert await reader.linked_blob_size("other", CONFIG) == 10
        finally:
            await reader.close()
            await writer.close()

    asyncio.run(main())


def test_a_commit_by_a_foreign_connection_empties_the_memo(tmp_path: Path) -> None:
    """Another program on the database file (an operator's sqlite3 shell, a CLI command)."""

    async def main() -> None:
        database = tmp_path / "meta.db"
        engines = create_engines(f"sqlite+aiosqlite:///{database}")
        await migrate.upgrade(engines.write)
        store = SQLMetadataStore(engines)
        try:
            await link(store, "repo", CONFIG, 10)
            await store.put_manifest("repo", manifest(FIRST, tags=("gone", "kept")))
            assert await store.list_tags("repo", None, 10) == ["gone", "kept"]
            assert await store.resolve_tag("repo", "gone") is not None

            foreign = sqlite3.connect(database)
            with foreign:
                foreign.execute("DELETE FROM tags WHERE name = 'gone'")
            foreign.close()

            assert await store.list_tags("repo", None, 10) == ["kept"]
            assert await store.resolve_tag("repo", "gone") is None
        finally:
            await store.close()

    asyncio.run(main())


def test_answers_beyond_the_budget_are_not_kept(tmp_path: Path) -> None:
    database = tmp_path / "plain.db"
    sqlite3.connect(database).close()
    memo = ReadMemo(str(database), budget=200)
    try:
        small, large = [("x" * 10,)], [("y" * 500,)]
        found, version = memo.lookup("small")
        assert found is None
        memo.store("small", version, small)
        memo.store("large", version, large)
        assert memo.lookup("small")[0] == small
        assert memo.lookup("large")[0] is None
    finally:
        memo.close()
