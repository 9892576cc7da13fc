"""Upload sessions in-process: refreshing against purging, and bodies off their announced size."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from dockyard.metadata.schema import uploads
from dockyard.oci.digest import Digest
from dockyard.registry.errors import BlobUploadUnknown, SizeInvalid, UploadOutOfOrder
from dockyard.registry.purge import PurgeOptions
from dockyard.registry.uploads import TOUCH_INTERVAL, Chunk, UploadState
from tests.system.api.client import digest_of
from tests.unit.registry.kit import Kit, chunk, chunks, database_url, open_kit, run

__all__ = ["database_url"]

MiB = 1024 * 1024
WEEK = 7 * 86400.0


async def _set_refreshed(kit: Kit, upload_id: str, ago: timedelta) -> None:
    async with kit.engines.begin_write() as connection:
        await connection.execute(update(uploads).where(uploads.c.id == upload_id)
                                 .values(updated_at=datetime.now(UTC) - ago))


async def _refreshed_at(kit: Kit, upload_id: str) -> datetime:
    record = await kit.registry._metadata.get_upload(upload_id)
    assert record is not None
    return record.updated_at


def test_a_chunk_refreshes_a_session_idle_for_longer_than_the_interval(
        tmp_path: Path, database_url: str) -> None:
    async def scenario() -> None:
        kit = await open_kit(tmp_path, database_url)
        try:
            session = await kit.registry.uploads.start("r")
            await kit.registry.uploads.append("r", session.id, chunk(b"x" * 100))
            await _set_refreshed(kit, session.id, timedelta(days=8))
            await kit.registry.uploads.append("r", session.id, chunk(b"x" * 100))
            report = await kit.registry.purger.run(PurgeOptions(age=WEEK))
            assert report.sessions == 0
            assert (await kit.registry.uploads.status("r", session.id)).size == 200
        finally:
            await kit.registry.close()

    run(scenario)


def test_chunks_within_the_interval_leave_the_session_as_refreshed(
        tmp_path: Path, database_url: str) -> None:
    async def scenario() -> None:
        kit = await open_kit(tmp_path, database_url)
        try:
            session = await kit.registry.uploads.start("r")
            await kit.registry.uploads.append("r", session.id, chunk(b"x" * 100))
            await _set_refreshed(kit, session.id, TOUCH_INTERVAL / 2)
            before = await _refreshed_at(kit, session.id)
            await kit.registry.uploads.append("r", session.id, chunk(b"x" * 100))
            assert await _refreshed_at(kit, session.id) == before
        finally:
            await kit.registry.close()

    run(scenario)


def test_a_session_gets_its_row_from_its_first_chunk(tmp_path: Path,
                                                       database_url: str) -> None:
    async def scenario() -> None:
        kit = await open_kit(tmp_path, database_url)
        try:
            session = await kit.registry.uploads.start("r")
            assert await kit.registry._metadata.get_upload(session.id) is None
            assert (await kit.registry.uploads.status("r", session.id)).size == 0
            await kit.registry.uploads.append("r", session.id, chunk(b"x" * 100))
            record = await kit.registry._metadata.get_upload(session.id)
            assert record is not None and record.repository == "r"
            data = b"x" * 100 + b"y" * 50
            digest = Digest.parse(digest_of(data))
            await kit.registry.uploads.complete("r", session.id, [digest], chunk(b"y" * 50))
            assert await kit.registry._metadata.get_upload(session.id) is None
            assert await kit.linked("r", str(digest))
        finally:
            await kit.registry.close()

    run(scenario)


def test_a_session_completed_by_its_first_request_never_gets_a_row(
        tmp_path: Path, database_url: str) -> None:
    async def scenario() -> None:
        kit = await open_kit(tmp_path, database_url)
        try:
            data = os.urandom(3000)
            digest = Digest.parse(digest_of(data))
            session = await kit.registry.uploads.start("r")
            await kit.registry.uploads.complete("r", session.id, [digest], chunk(data))
            assert await kit.linked("r", str(digest))
            assert await kit.registry._metadata.get_upload(session.id) is None
            assert not (tmp_path / "uploads" / session.id).exists()
            with pytest.raises(BlobUploadUnknown):  # the session ended with its blob
                await kit.registry.uploads.complete("r", session.id, [digest], chunk(data))
        finally:
            await kit.registry.close()

    run(scenario)


def test_an_id_is_unknown_to_every_other_repository(tmp_path: Path) -> None:
    async def scenario() -> None:
        kit = await open_kit(tmp_path)
        uploads = kit.registry.uploads
        try:
            fresh = await uploads.start("team/app")
            appended = await uploads.start("team/app")
            await uploads.append("team/app", appended.id, chunk(b"x" * 10))
            for session in (fresh, appended):
                with pytest.raises(BlobUploadUnknown):
                    await uploads.status("team/other", session.id)
                with pytest.raises(BlobUploadUnknown):
                    await uploads.append("team/other", session.id, chunk(b"y"))
                with pytest.raises(BlobUploadUnknown):
                    await uploads.cancel("team/other", session.id)
            assert (await uploads.status("team/app", fresh.id)).size == 0
            assert (await uploads.status("team/app", appended.id)).size == 10
            assert await kit.registry._metadata.get_upload(fresh.id) is None
        finally:
            await kit.registry.close()

    run(scenario)


def test_cancelling_ends_a_session_with_or_without_its_row(tmp_path: Path) -> None:
    async def scenario() -> None:
        kit = await open_kit(tmp_path)
        uploads = kit.registry.uploads
        try:
            fresh = await uploads.start("r")
            appended = await uploads.start("r")
            await uploads.append("r", appended.id, chunk(b"x" * 10))
            for session in (fresh, appended):
                await uploads.cancel("r", session.id)
                with pytest.raises(BlobUploadUnknown):
                    await uploads.status("r", session.id)
                assert not (tmp_path / "uploads" / session.id).exists()
            assert await kit.registry._metadata.get_upload(appended.id) is None
        finally:
            await kit.registry.close()

    run(scenario)


async def _held_open(first: bytes, gate: asyncio.Event, rest: bytes,
                     reached: asyncio.Event) -> AsyncIterator[bytes]:
    """A body that stops after `first` until `gate` is set; the request holds its session."""
    yield first
    reached.set()
    await gate.wait()
    yield rest


async def _writing(kit: Kit, idle_for: timedelta | None = None
                   ) -> tuple[str, asyncio.Event, asyncio.Task[UploadState]]:
    """A session holding 10 bytes (idle for `idle_for`, if given) and a request appending 10
    more that stops halfway until the returned event is set."""
    uploads = kit.registry.uploads
    session = await uploads.start("r")
    await uploads.append("r", session.id, chunk(b"a" * 10))
    if idle_for is not None:
        await _set_refreshed(kit, session.id, idle_for)
    gate, reached = asyncio.Event(), asyncio.Event()
    writing = asyncio.create_task(uploads.append(
        "r", session.id, Chunk(_held_open(b"b" * 5, gate, b"b" * 5, reached))))
    await reached.wait()
    return session.id, gate, writing


def test_a_session_takes_one_writing_request_at_a_time(tmp_path: Path) -> None:
    async def scenario() -> None:
        kit = await open_kit(tmp_path)
        uploads = kit.registry.uploads
        try:
            upload_id, gate, writing = await _writing(kit)
            data = b"a" * 10 + b"b" * 10
            digest = Digest.parse(digest_of(data))
            racing = [uploads.append("r", upload_id, chunk(b"c" * 10)),
                      uploads.append("r", upload_id, Chunk(chunks(b"c" * 10), (10, 19))),
                      uploads.complete("r", upload_id, [digest], None),
                      uploads.cancel("r", upload_id)]
            for attempt in racing:
                with pytest.raises(UploadOutOfOrder) as caught:
                    await attempt
                assert caught.value.size >= 10
            gate.set()
            assert (await writing).size == 20
            assert (tmp_path / "uploads" / upload_id).read_bytes() == data
            await uploads.complete("r", upload_id, [digest], None)
            assert await kit.linked("r", str(digest))
        finally:
            await kit.registry.close()

    run(scenario)


def test_purging_leaves_a_session_alone_while_a_request_writes_it(tmp_path: Path) -> None:
    async def scenario() -> None:
        kit = await open_kit(tmp_path)
        uploads = kit.registry.uploads
        try:
            upload_id, gate, writing = await _writing(kit, idle_for=timedelta(days=8))
            report = await kit.registry.purger.run(PurgeOptions(age=WEEK))
            assert (report.sessions, report.strays) == (0, 0)
            gate.set()
            assert (await writing).size == 20
            assert (await uploads.status("r", upload_id)).size == 20
            # idle again, and refreshed by that chunk: still not purged
            assert (await kit.registry.purger.run(PurgeOptions(age=WEEK))).sessions == 0
        finally:
            await kit.registry.close()

    run(scenario)


async def _body(size: int, piece: int = 256 * 1024) -> AsyncIterator[bytes]:
    data = os.urandom(size)
    for start in range(0, size, piece):
        yield data[start:start + piece]


@pytest.mark.parametrize("sent", [3 * MiB - 1, 3 * MiB + 1])
def test_a_large_body_off_its_announced_size_changes_nothing(tmp_path: Path,
                                                             sent: int) -> None:
    async def scenario() -> None:
        kit = await open_kit(tmp_path)
        try:
            session = await kit.registry.uploads.start("r")
            await kit.registry.uploads.append("r", session.id, chunk(b"a" * 1000))
            with pytest.raises(SizeInvalid):
                await kit.registry.uploads.append(
                    "r", session.id, Chunk(_body(sent), (1000, 1000 + 3 * MiB - 1)))
            assert (await kit.registry.uploads.status("r", session.id)).size == 1000
            assert (tmp_path / "uploads" / session.id).read_bytes() == b"a" * 1000
        finally:
            await kit.registry.close()

    run(scenario)
