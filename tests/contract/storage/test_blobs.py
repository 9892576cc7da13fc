"""Stored blobs: sizes, reads of any part, listing, deleting, and where clients may fetch them."""

from __future__ import annotations

import asyncio
import secrets
import time

import pytest
import requests

from dockyard.oci.digest import Digest
from dockyard.storage.base import BlobStore
from tests.blobs import chunks, collect
from tests.contract.storage.conftest import Nodes, Run


async def _store(store: BlobStore, data: bytes, upload_id: str) -> Digest:
    await store.create_upload(upload_id)
    await store.append_upload(upload_id, 0, chunks([data]))
    await store.commit_upload(upload_id, Digest.of(data))
    return Digest.of(data)


def test_a_blob_is_read_whole_or_from_any_offset_for_any_length(run: Run) -> None:
    data = b"hello world!"

    async def scenario(nodes: Nodes) -> None:
        store = nodes()
        assert await store.stat(Digest.of(data)) is None
        digest = await _store(store, data, "u1")
        assert await store.stat(digest) == 12
        assert await collect(store.read(digest)) == data
        assert await collect(store.read(digest, 6, 5)) == b"world"
        assert await collect(store.read(digest, 6)) == b"world!"
        assert await collect(store.read(digest, 0, 5)) == b"hello"
        assert await collect(store.read(digest, 3, 0)) == b""

    run(scenario)


def test_an_empty_blob_is_stored(run: Run) -> None:
    async def scenario(nodes: Nodes) -> None:
        store = nodes()
        await store.create_upload("empty")
        await store.commit_upload("empty", Digest.of(b""))
        assert await store.stat(Digest.of(b"")) == 0
        assert await collect(store.read(Digest.of(b""))) == b""

    run(scenario)


def test_listing_names_every_blob_and_delete_many_frees_their_bytes(run: Run) -> None:
    blobs = [secrets.token_bytes(1000 + index) for index in range(3)]
    digests = [Digest.of(data) for data in blobs]

    async def scenario(nodes: Nodes) -> None:
        store = nodes()
        started = time.time()
        for index, data in enumerate(blobs):
            await _store(store, data, f"l{index}")
        listed = [blob async for blob in nodes().list_blobs()]
        assert {blob.digest: blob.size for blob in listed} == {
            digest: len(data) for digest, data in zip(digests, blobs, strict=True)
        }
        assert all(started - 5 <= blob.modified <= time.time() + 5 for blob in listed)
        absent = Digest.of(b"never stored")
        freed = await store.delete_many([digests[0], digests[1], absent])
        assert freed == len(blobs[0]) + len(blobs[1])
        assert await store.stat(digests[0]) is None
        assert [blob.digest async for blob in store.list_blobs()] == [digests[2]]
        assert await store.delete_many([]) == 0

    run(scenario)


def test_delete_removes_a_blob_and_a_missing_one_is_no_error(run: Run) -> None:
    async def scenario(nodes: Nodes) -> None:
        store = nodes()
        digest = await _store(store, b"short-lived", "d1")
        await store.delete(digest)
        assert await store.stat(digest) is None
        assert [blob async for blob in store.list_blobs()] == []
        await store.delete(digest)
        # A reader that looked the blob up before it went (GC) learns it is gone, as from a
        # file: `dockyard check` and the HTTP layer tell that apart from a broken store.
        with pytest.raises(FileNotFoundError):
            await collect(store.read(digest))

    run(scenario)


def test_a_local_path_or_redirect_url_serves_exactly_the_blob(run: Run) -> None:
    """Whichever a driver offers, the HTTP layer hands it out in place of the bytes."""
    data = secrets.token_bytes(100_000)

    async def scenario(nodes: Nodes) -> None:
        store = nodes()
        digest = await _store(store, data, "served")
        path = store.local_path(digest)
        if path is not None:
            assert path.read_bytes() == data
        url = await store.redirect_url(digest)
        if url is not None:
            whole = await asyncio.to_thread(requests.get, url, timeout=10)
            assert whole.status_code == 200 and whole.content == data
            part = await asyncio.to_thread(requests.get, url, timeout=10,
                                           headers={"Range": "bytes=10-19"})
            assert part.status_code == 206 and part.content == data[10:20]

    run(scenario)


def test_a_working_store_verifies(run: Run) -> None:
    """What readiness and `serve` ask before anything else: the store can hold blobs now."""

    async def scenario(nodes: Nodes) -> None:
        await nodes().verify()

    run(scenario)
