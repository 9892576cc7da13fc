"""Upload sessions: recorded once, completed into a blob link, or ended."""

from __future__ import annotations

import pytest

from dockyard.metadata.records import UploadGone
from tests.contract.metadata.conftest import Implementation, Stores
from tests.contract.metadata.kit import LAYER


def test_completion_ends_the_session_and_links_the_blob(stores: Implementation) -> None:
    async def scenario(s: Stores) -> None:
        await s.metadata.create_upload("u", "repo")
        await s.metadata.create_upload("u", "repo")  # a racing first chunk: no change
        record = await s.metadata.get_upload("u")
        assert record is not None and (record.id, record.repository) == ("u", "repo")
        placed: list[str] = []

        async def place_bytes() -> None:
            placed.append("bytes")

        await s.metadata.complete_upload("u", "repo", LAYER, 7, place_bytes)
        assert placed == ["bytes"]
        assert await s.metadata.get_upload("u") is None
        assert await s.metadata.linked_blob_size("repo", LAYER) == 7
        assert await s.metadata.list_repositories(None, 10) == ["repo"]

    stores.run(scenario)


def test_an_ended_session_cannot_complete(stores: Implementation) -> None:
    async def scenario(s: Stores) -> None:
        await s.metadata.create_upload("u", "repo")
        assert await s.metadata.delete_upload("u")
        assert not await s.metadata.delete_upload("u")
        with pytest.raises(UploadGone):
            await s.metadata.complete_upload("u", "repo", LAYER, 7)
        assert await s.metadata.linked_blob_size("repo", LAYER) is None

    stores.run(scenario)


def test_touching_a_session_moves_its_last_use(stores: Implementation) -> None:
    async def scenario(s: Stores) -> None:
        await s.metadata.create_upload("u", "repo")
        before = await s.metadata.get_upload("u")
        await s.metadata.touch_upload("u")
        after = await s.metadata.get_upload("u")
        assert before is not None and after is not None
        assert after.updated_at > before.updated_at
        assert after.created_at == before.created_at

    stores.run(scenario)
