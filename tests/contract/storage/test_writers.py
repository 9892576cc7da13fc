"""One writer per upload: a held upload refuses other holders, a stale offset is refused."""

from __future__ import annotations

import pytest

from dockyard.storage.base import UploadBusy, UploadMissing
from tests.blobs import chunks
from tests.contract.storage.conftest import Nodes, Run


def test_holding_an_upload_excludes_other_requests_of_the_process(run: Run) -> None:
    async def scenario(nodes: Nodes) -> None:
        store = nodes()
        await store.create_upload("held")
        await store.create_upload("other")
        async with store.hold_upload("held"):
            with pytest.raises(UploadBusy):
                async with store.hold_upload("held"):
                    pass
            async with store.hold_upload("other"):
                pass
        async with store.hold_upload("held"):
            assert await store.upload_size("held") == 0

    run(scenario)


def test_holding_a_missing_upload_ends_in_upload_missing(run: Run) -> None:
    async def scenario(nodes: Nodes) -> None:
        store = nodes()
        with pytest.raises(UploadMissing):
            async with store.hold_upload("never-made"):
                await store.upload_size("never-made")

    run(scenario)


def test_an_append_not_at_the_staged_end_is_busy_and_changes_nothing(run: Run) -> None:
    async def scenario(nodes: Nodes) -> None:
        store = nodes()
        await store.create_upload("race")
        await store.append_upload("race", 0, chunks([b"x" * 100]))
        for offset in (0, 50, 101):  # a racer read the size before the other's append ended
            with pytest.raises(UploadBusy):
                await nodes().append_upload("race", offset, chunks([b"y" * 10]))
        assert await store.upload_size("race") == 100

    run(scenario)
