"""Staged uploads: appends that any node may continue, failures that change nothing, commits
that make a blob at once, and uploads that are gone."""

from __future__ import annotations

import asyncio
import hashlib
import os
import secrets
import time
from collections.abc import AsyncIterator

import pytest

from dockyard.oci.digest import Digest
from dockyard.storage.base import UploadMissing
from tests.backends import S3_CHUNK_SIZE
from tests.blobs import chunks, collect, pieces
from tests.contract.storage.conftest import Nodes, Run

MiB = 1024 * 1024


def test_a_committed_upload_is_a_blob_and_no_longer_an_upload(run: Run) -> None:
    async def scenario(nodes: Nodes) -> None:
        store = nodes()
        await store.create_upload("u1")
        assert await store.upload_size("u1") == 0
        seen = hashlib.sha256()
        assert await store.append_upload("u1", 0, chunks([b"hello ", b"world"]),
                                         seen.update) == 11
        assert await store.append_upload("u1", 11, chunks([b"!"]), seen.update) == 12
        digest = Digest("sha256", seen.hexdigest())
        assert digest == Digest.of(b"hello world!")
        assert await store.stat(digest) is None
        await store.commit_upload("u1", digest)
        assert await store.stat(digest) == 12
        assert await collect(store.read(digest)) == b"hello world!"
        with pytest.raises(UploadMissing):
            await store.upload_size("u1")
        assert [upload async for upload in store.list_uploads()] == []

    run(scenario)


def test_an_upload_continues_on_any_node(run: Run) -> None:
    """Small chunks from alternating nodes (on S3 they fold into parts across nodes)."""
    data = secrets.token_bytes(2 * S3_CHUNK_SIZE + 12345)
    digest = Digest.of(data)

    async def scenario(nodes: Nodes) -> None:
        first = nodes()
        await first.create_upload("u1")
        offset, step = 0, 700_000
        while offset < len(data):
            node = nodes() if offset // step % 2 else first
            piece = data[offset:offset + step]
            offset = await node.append_upload("u1", offset, chunks([piece[:1000], piece[1000:]]))
            assert await nodes().upload_size("u1") == offset
        hasher = hashlib.sha256()
        async for chunk in nodes().read_upload("u1"):
            hasher.update(chunk)
        assert hasher.hexdigest() == digest.hex
        await nodes().commit_upload("u1", digest)
        assert await first.stat(digest) == len(data)
        assert await collect(first.read(digest)) == data
        assert await collect(first.read(digest, S3_CHUNK_SIZE - 5, 10)) == (
            data[S3_CHUNK_SIZE - 5:S3_CHUNK_SIZE + 5]
        )
        with pytest.raises(UploadMissing):
            await first.upload_size("u1")

    run(scenario)


def test_appends_at_unaligned_offsets_store_and_show_every_byte(run: Run) -> None:
    async def scenario(nodes: Nodes) -> None:
        store = nodes()
        await store.create_upload("u4")
        parts = [os.urandom(size) for size in (3 * MiB + 5, 1, 2 * MiB - 3)]
        seen = hashlib.sha256()
        offset = 0
        for part in parts:
            offset = await store.append_upload("u4", offset, chunks(pieces(part)), seen.update)
        data = b"".join(parts)
        assert offset == len(data)
        assert seen.hexdigest() == hashlib.sha256(data).hexdigest()
        assert await collect(store.read_upload("u4")) == data

    run(scenario)


@pytest.mark.parametrize(("head", "body"), [
    (b"abc", [b"def", b"ghi"]),
    (os.urandom(5000), pieces(os.urandom(6 * MiB))),  # past a part: S3 wrote one
], ids=["small", "large"])
def test_a_failed_append_changes_nothing(run: Run, head: bytes, body: list[bytes]) -> None:
    async def scenario(nodes: Nodes) -> None:
        store = nodes()
        await store.create_upload("u2")
        await store.append_upload("u2", 0, chunks([head]))
        with pytest.raises(ConnectionResetError):
            await store.append_upload("u2", len(head), chunks(body, fail_after=len(body) - 1))
        assert await store.upload_size("u2") == len(head)
        data = head + b"".join(body)
        assert await store.append_upload("u2", len(head), chunks(body)) == len(data)
        assert await collect(store.read_upload("u2")) == data
        await store.commit_upload("u2", Digest.of(data))
        assert await collect(store.read(Digest.of(data))) == data

    run(scenario)


def test_a_cancelled_append_changes_nothing(run: Run) -> None:
    async def scenario(nodes: Nodes) -> None:
        store = nodes()
        await store.create_upload("u6")
        stalled = asyncio.Event()

        async def stalling() -> AsyncIterator[bytes]:
            for piece in pieces(os.urandom(S3_CHUNK_SIZE + MiB)):
                yield piece
            stalled.set()
            await asyncio.Event().wait()  # the client stops sending

        task = asyncio.create_task(store.append_upload("u6", 0, stalling()))
        await stalled.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await store.upload_size("u6") == 0

    run(scenario)


def test_a_deleted_upload_is_gone_and_deleting_it_again_is_no_error(run: Run) -> None:
    async def scenario(nodes: Nodes) -> None:
        store = nodes()
        await store.create_upload("u5")
        await store.append_upload("u5", 0, chunks([b"x" * (S3_CHUNK_SIZE + 1)]))
        await store.delete_upload("u5")
        with pytest.raises(UploadMissing):
            await store.upload_size("u5")
        assert [upload async for upload in store.list_uploads()] == []
        await store.delete_upload("u5")

    run(scenario)


def test_listing_names_each_staged_upload_once_with_its_latest_change(run: Run) -> None:
    async def scenario(nodes: Nodes) -> None:
        store = nodes()
        started = time.time()
        await store.create_upload("idle")
        await store.create_upload("busy")
        await store.append_upload("busy", 0, chunks([secrets.token_bytes(S3_CHUNK_SIZE + 1)]))
        listed = [entry async for entry in nodes().list_uploads()]
        assert sorted(upload_id for upload_id, _ in listed) == ["busy", "idle"]
        assert all(started - 5 <= modified <= time.time() + 5 for _, modified in listed)
        await store.delete_upload("idle")
        assert [upload_id async for upload_id, _ in store.list_uploads()] == ["busy"]

    run(scenario)


def test_a_missing_upload_is_reported_by_every_use(run: Run) -> None:
    """Never created, committed or deleted: all the same to the store."""

    async def scenario(nodes: Nodes) -> None:
        store = nodes()
        with pytest.raises(UploadMissing):
            await store.upload_size("nope")
        with pytest.raises(UploadMissing):
            await store.append_upload("nope", 0, chunks([b"x"]))
        with pytest.raises(UploadMissing):
            await store.append_and_commit("nope", 0, chunks([b"x"]), hashlib.sha256().update,
                                          lambda: None)
        with pytest.raises(UploadMissing):
            await collect(store.read_upload("nope"))
        with pytest.raises(UploadMissing):
            await store.commit_upload("nope", Digest.of(b"x"))
        assert await store.stat(Digest.of(b"x")) is None
        await store.delete_upload("nope")

    run(scenario)
