"""Finding upload sessions nobody touched, and ending them only if still untouched."""

from __future__ import annotations

from tests.contract.metadata.conftest import Implementation, Stores
from tests.contract.metadata.kit import FUTURE, PAST


def test_stale_sessions_page_by_id_and_end_only_while_stale(stores: Implementation) -> None:
    async def scenario(s: Stores) -> None:
        purge = s.maintenance.purge
        for upload_id in ("c", "a", "b"):
            await s.metadata.create_upload(upload_id, "repo")
        assert await purge.stale_uploads(PAST, None, 10) == []
        assert await purge.stale_uploads(FUTURE, None, 2) == ["a", "b"]
        assert await purge.stale_uploads(FUTURE, "b", 2) == ["c"]
        assert not await purge.delete_stale_upload("a", PAST), "touched since the cutoff"
        assert await s.metadata.get_upload("a") is not None
        assert await purge.delete_stale_upload("a", FUTURE)
        assert not await purge.delete_stale_upload("a", FUTURE)
        assert await s.metadata.get_upload("a") is None
        assert await purge.known_uploads(["a", "b", "x"]) == {"b"}

    stores.run(scenario)
