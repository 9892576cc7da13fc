"""The filesystem blob store: staging, atomic commit, and failed appends changing nothing."""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterable
from pathlib import Path

import pytest

from dockyard.oci.digest import Digest, Hasher
from dockyard.storage.base import UploadBusy, UploadMissing
from dockyard.storage.filesystem.driver import FilesystemBlobStore


async def _chunks(parts: Iterable[bytes], fail_after: int | None = None) -> AsyncIterator[bytes]:
    for index, part in enumerate(parts):
        if fail_after is not None and index == fail_after:
            raise ConnectionResetError("client went away")
        yield part


async def _collect(stream: AsyncIterator[bytes]) -> bytes:
    return b"".join([chunk async for chunk in stream])


def test_upload_commit_makes_a_readable_blob(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = FilesystemBlobStore(tmp_path)
        await store.create_upload("u1")
        seen = hashlib.sha256()
        size = await store.append_upload("u1", 0, _chunks([b"hello ", b"world"]), seen.update)
        assert size == 11
        size = await store.append_upload("u1", 11, _chunks([b"!"]), seen.update)
        digest = Digest("sha256", seen.hexdigest())
        assert digest == Digest.of(b"hello world!")
        assert await store.stat(digest) is None
        await store.commit_upload("u1", digest)
        assert await store.stat(digest) == size == 12
        assert await _collect(store.read(digest)) == b"hello world!"
        assert await _collect(store.read(digest, 6, 5)) == b"world"
        with pytest.raises(UploadMissing):
            await store.upload_size("u1")

    asyncio.run(scenario())


def test_failed_append_is_cut_back(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = FilesystemBlobStore(tmp_path)
        await store.create_upload("u2")
        await store.append_upload("u2", 0, _chunks([b"abc"]))
        with pytest.raises(ConnectionResetError):
            await store.append_upload("u2", 3, _chunks([b"def", b"ghi"], fail_after=1))
        assert await store.upload_size("u2") == 3
        assert await _collect(store.read_upload("u2")) == b"abc"

    asyncio.run(scenario())


def test_missing_upload_is_reported(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = FilesystemBlobStore(tmp_path)
        with pytest.raises(UploadMissing):
            await store.append_upload("nope", 0, _chunks([b"x"]))
        with pytest.raises(UploadMissing):
            await store.commit_upload("nope", Digest.of(b"x"))
        await store.delete_upload("nope")
        await store.delete(Digest.of(b"x"))

    asyncio.run(scenario())


def test_blobs_are_laid_out_by_digest(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = FilesystemBlobStore(tmp_path)
        digest = Digest.of(b"layout", "sha512")
        await store.create_upload("u3")
        await store.append_upload("u3", 0, _chunks([b"layout"]))
        await store.commit_upload("u3", digest)
        expected = tmp_path / "blobs" / "sha512" / digest.hex[:2] / digest.hex
        assert store.local_path(digest) == expected
        assert expected.read_bytes() == b"layout"
        assert not list((tmp_path / "uploads").iterdir())

    asyncio.run(scenario())


def _pieces(data: bytes, size: int = 256 * 1024) -> list[bytes]:
    return [data[start:start + size] for start in range(0, len(data), size)]


def test_large_appends_at_unaligned_offsets_hash_and_store_every_byte(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = FilesystemBlobStore(tmp_path)
        await store.create_upload("u4")
        parts = [os.urandom(size) for size in (3 * 1024 * 1024 + 5, 1, 2 * 1024 * 1024 - 3)]
        seen = hashlib.sha256()
        offset = 0
        for part in parts:
            offset = await store.append_upload("u4", offset, _chunks(_pieces(part)),
                                               seen.update)
        data = b"".join(parts)
        assert offset == len(data)
        assert seen.hexdigest() == hashlib.sha256(data).hexdigest()
        assert await _collect(store.read_upload("u4")) == data

    asyncio.run(scenario())


def test_failed_large_append_is_cut_back(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = FilesystemBlobStore(tmp_path)
        await store.create_upload("u5")
        head = os.urandom(5000)
        await store.append_upload("u5", 0, _chunks([head]))
        big = _pieces(os.urandom(6 * 1024 * 1024))
        with pytest.raises(ConnectionResetError):
            await store.append_upload("u5", 5000, _chunks(big, fail_after=len(big) - 1))
        assert await store.upload_size("u5") == 5000
        assert await _collect(store.read_upload("u5")) == head

    asyncio.run(scenario())


def test_cancelled_large_append_is_cut_back(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = FilesystemBlobStore(tmp_path)
        await store.create_upload("u6")
        stalled = asyncio.Event()

        async def stalling() -> AsyncIterator[bytes]:
            for piece in _pieces(os.urandom(3 * 1024 * 1024)):
                yield piece
            stalled.set()
            await asyncio.Event().wait()  # the client stops sending

        task = asyncio.create_task(store.append_upload("u6", 0, stalling()))
        await stalled.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await store.upload_size("u6") == 0

    asyncio.run(scenario())


def _commit_if(seen: Hasher, digest: Digest) -> Callable[[], Digest | None]:
    return lambda: digest if seen.hexdigest() == digest.hex else None


@pytest.mark.parametrize("size", [11, 3 * 1024 * 1024 + 5])  # in one thread hop; in threads
def test_append_and_commit_places_a_body_that_hashes_to_its_digest(tmp_path: Path,
                                                                   size: int) -> None:
    data = os.urandom(size)
    digest = Digest.of(data)

    async def scenario() -> None:
        store = FilesystemBlobStore(tmp_path)
        await store.create_upload("whole")
        seen = hashlib.sha256()
        parts = [data[i:i + 65536] for i in range(0, size, 65536)]
        assert await store.append_and_commit("whole", 0, _chunks(parts), seen.update,
                                             _commit_if(seen, digest)) == (size, True)
        assert await store.stat(digest) == size
        assert await _collect(store.read(digest)) == data
        with pytest.raises(UploadMissing):
            await store.upload_size("whole")

    asyncio.run(scenario())


def test_append_and_commit_leaves_a_mismatch_staged(tmp_path: Path) -> None:
    claimed = Digest.of(b"something else")

    async def scenario() -> None:
        store = FilesystemBlobStore(tmp_path)
        await store.create_upload("wrong")
        seen = hashlib.sha256()
        assert await store.append_and_commit("wrong", 0, _chunks([b"abc"]), seen.update,
                                             _commit_if(seen, claimed)) == (3, False)
        assert await store.stat(claimed) is None
        assert await _collect(store.read_upload("wrong")) == b"abc"

    asyncio.run(scenario())


def test_append_and_commit_keeps_a_blob_already_stored(tmp_path: Path) -> None:
    digest = Digest.of(b"abc")

    async def scenario() -> None:
        store = FilesystemBlobStore(tmp_path)
        await store.create_upload("first")
        await store.append_upload("first", 0, _chunks([b"abc"]))
        await store.commit_upload("first", digest)
        await store.create_upload("again")
        seen = hashlib.sha256()
        assert await store.append_and_commit("again", 0, _chunks([b"abc"]), seen.update,
                                             _commit_if(seen, digest)) == (3, False)
        assert await store.upload_size("again") == 3  # still staged: the caller drops it
        assert await store.stat(digest) == 3

    asyncio.run(scenario())


def test_holding_an_upload_excludes_other_processes_and_requests(tmp_path: Path) -> None:
    store = FilesystemBlobStore(tmp_path)
    holder = (
        "import fcntl, os, sys\n"
        "fd = os.open(sys.argv[1], os.O_RDONLY)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)\n"
        "print('held', flush=True)\n"
        "sys.stdin.read()\n"
    )

    async def scenario() -> None:
        await store.create_upload("held")
        other = subprocess.Popen([sys.executable, "-c", holder, str(tmp_path / "uploads/held")],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            assert other.stdout is not None and other.stdout.readline() == "held\n"
            with pytest.raises(UploadBusy):
                async with store.hold_upload("held"):
                    pass
        finally:
            other.communicate("")  # the process ends; its lock goes with it
        async with store.hold_upload("held"):
            with pytest.raises(UploadBusy):  # another request of this process
                async with store.hold_upload("held"):
                    pass
        async with store.hold_upload("held"):
            pass
        with pytest.raises(UploadMissing):
            async with store.hold_upload("never-made"):
                pass

    asyncio.run(scenario())
