"""The S3 blob store against moto's S3 server: multipart staging that any node can continue."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
from collections.abc import Awaitable, Callable

import pytest
import requests

from dockyard.oci.digest import Digest
from dockyard.storage.base import UploadBusy, UploadMissing
from dockyard.storage.s3.driver import S3BlobStore, S3Options
from tests.backends import S3_BUCKET, S3_CHUNK_SIZE, S3_KEYS, Services
from tests.unit.storage.test_filesystem import _chunks, _collect, _commit_if

Scenario = Callable[[Callable[[], S3BlobStore]], Awaitable[None]]


def run(services: Services, scenario: Scenario, **extra: object) -> None:
    """Run with a store factory: each store is another node on the same bucket and prefix."""
    root = f"unit-{secrets.token_hex(4)}"

    async def main() -> None:
        made: list[S3BlobStore] = []

        def store() -> S3BlobStore:
            options = S3Options(
                bucket=S3_BUCKET, endpoint_url=services.moto.endpoint, force_path_style=True,
                access_key=S3_KEYS["accesskey"], secret_key=S3_KEYS["secretkey"], root=root,
                chunk_size=S3_CHUNK_SIZE, **extra,  # type: ignore[arg-type]
            )
            made.append(S3BlobStore(options))
            return made[-1]

        try:
            await scenario(store)
        finally:
            for each in made:
                await each.close()

    asyncio.run(main())


def test_small_chunks_fold_into_parts_across_nodes(services: Services) -> None:
    data = secrets.token_bytes(2 * S3_CHUNK_SIZE + 12345)
    digest = Digest.of(data)

    async def scenario(store: Callable[[], S3BlobStore]) -> None:
        first = store()
        await first.create_upload("u1")
        offset, step = 0, 700_000
        while offset < len(data):
            node = store() if offset // step % 2 else first  # alternate "nodes"
            piece = data[offset:offset + step]
            offset = await node.append_upload("u1", offset, _chunks([piece[:1000], piece[1000:]]))
            assert await store().upload_size("u1") == offset
        hasher = hashlib.sha256()
        async for chunk in store().read_upload("u1"):
            hasher.update(chunk)
        assert hasher.hexdigest() == digest.hex
        await store().commit_upload("u1", digest)
        assert await first.stat(digest) == len(data)
        assert await _collect(first.read(digest)) == data
        assert await _collect(first.read(digest, S3_CHUNK_SIZE - 5, 10)) == (
            data[S3_CHUNK_SIZE - 5:S3_CHUNK_SIZE + 5]
        )
        with pytest.raises(UploadMissing):
            await first.upload_size("u1")

    run(services, scenario)


def test_failed_append_changes_nothing(services: Services) -> None:
    async def scenario(store: Callable[[], S3BlobStore]) -> None:
        node = store()
        await node.create_upload("u2")
        await node.append_upload("u2", 0, _chunks([b"a" * 100]))
        big = [b"b" * (1 << 20)] * 6
        with pytest.raises(ConnectionResetError):
            await node.append_upload("u2", 100, _chunks(big, fail_after=5))
        assert await node.upload_size("u2") == 100
        size = await node.append_upload("u2", 100, _chunks(big))
        assert size == 100 + 6 * (1 << 20)
        data = b"a" * 100 + b"".join(big)
        await node.commit_upload("u2", Digest.of(data))
        assert await _collect(node.read(Digest.of(data))) == data

    run(services, scenario)


def test_large_blob_is_copied_in_parts(services: Services) -> None:
    data = secrets.token_bytes(S3_CHUNK_SIZE + 4096)

    async def scenario(store: Callable[[], S3BlobStore]) -> None:
        node = store()
        await node.create_upload("u3")
        await node.append_upload("u3", 0, _chunks([data]))
        await node.commit_upload("u3", Digest.of(data))
        assert await _collect(node.read(Digest.of(data))) == data

    run(services, scenario, copy_threshold=S3_CHUNK_SIZE, copy_chunk_size=S3_CHUNK_SIZE)


def test_empty_blob_and_cancel(services: Services) -> None:
    async def scenario(store: Callable[[], S3BlobStore]) -> None:
        node = store()
        await node.create_upload("u4")
        await node.commit_upload("u4", Digest.of(b""))
        assert await node.stat(Digest.of(b"")) == 0
        await node.create_upload("u5")
        await node.append_upload("u5", 0, _chunks([b"x" * (S3_CHUNK_SIZE + 1)]))
        await node.delete_upload("u5")
        with pytest.raises(UploadMissing):
            await node.upload_size("u5")
        await node.delete_upload("u5")

    run(services, scenario)


def test_presigned_redirect_serves_ranges(services: Services) -> None:
    data = secrets.token_bytes(100_000)

    async def scenario(store: Callable[[], S3BlobStore]) -> None:
        node = store()
        await node.create_upload("u6")
        await node.append_upload("u6", 0, _chunks([data]))
        await node.commit_upload("u6", Digest.of(data))
        url = await node.redirect_url(Digest.of(data))
        assert url is not None
        whole = await asyncio.to_thread(requests.get, url, timeout=10)
        assert whole.content == data
        part = await asyncio.to_thread(requests.get, url, headers={"Range": "bytes=10-19"},
                                       timeout=10)
        assert part.status_code == 206 and part.content == data[10:20]

    run(services, scenario)
    run(services, _no_redirect, redirect=False)


async def _no_redirect(store: Callable[[], S3BlobStore]) -> None:
    assert await store().redirect_url(Digest.of(b"x")) is None


def test_list_and_delete_many(services: Services) -> None:
    blobs = [secrets.token_bytes(1000 + index) for index in range(3)]

    async def scenario(store: Callable[[], S3BlobStore]) -> None:
        node = store()
        for index, data in enumerate(blobs):
            await node.create_upload(f"l{index}")
            await node.append_upload(f"l{index}", 0, _chunks([data]))
            await node.commit_upload(f"l{index}", Digest.of(data))
        listed = {blob.digest: blob.size async for blob in node.list_blobs()}
        assert listed == {Digest.of(data): len(data) for data in blobs}
        freed = await node.delete_many([Digest.of(blobs[0]), Digest.of(blobs[1])])
        assert freed == len(blobs[0]) + len(blobs[1])
        assert [blob.digest async for blob in node.list_blobs()] == [Digest.of(blobs[2])]

    run(services, scenario)


def test_append_and_commit_places_only_a_matching_new_blob(services: Services) -> None:
    data = secrets.token_bytes(4096)
    digest = Digest.of(data)

    async def scenario(store: Callable[[], S3BlobStore]) -> None:
        node = store()
        for upload_id, claimed, placed in (("w1", Digest.of(b"other"), False),
                                           ("w2", digest, True), ("w3", digest, False)):
            await node.create_upload(upload_id)
            seen = hashlib.sha256()
            assert await node.append_and_commit(
                upload_id, 0, _chunks([data]), seen.update,
                _commit_if(seen, claimed)) == (len(data), placed)
            if placed:
                with pytest.raises(UploadMissing):
                    await node.upload_size(upload_id)
            else:  # a mismatch, or a blob already stored: still staged for the caller
                assert await node.upload_size(upload_id) == len(data)
        assert await _collect(node.read(digest)) == data

    run(services, scenario)


def test_list_uploads_names_each_staged_upload_once_with_its_latest_change(
        services: Services) -> None:
    async def scenario(store: Callable[[], S3BlobStore]) -> None:
        node = store()
        started = time.time()
        await node.create_upload("idle")
        await node.create_upload("busy")
        await node.append_upload("busy", 0, _chunks([secrets.token_bytes(S3_CHUNK_SIZE + 1)]))
        listed = dict([entry async for entry in store().list_uploads()])
        assert set(listed) == {"idle", "busy"}
        assert all(started - 5 <= modified <= time.time() + 5 for modified in listed.values())
        await node.delete_upload("idle")
        assert [upload_id async for upload_id, _ in node.list_uploads()] == ["busy"]

    run(services, scenario)


def test_an_append_not_at_the_staged_end_is_busy(services: Services) -> None:
    async def scenario(store: Callable[[], S3BlobStore]) -> None:
        node = store()
        await node.create_upload("race")
        await node.append_upload("race", 0, _chunks([b"x" * 100]))
        for offset in (0, 50, 101):  # a racer read the size before the other's append ended
            with pytest.raises(UploadBusy):
                await store().append_upload("race", offset, _chunks([b"y" * 10]))
        assert await node.upload_size("race") == 100

    run(services, scenario)


def test_holding_an_upload_excludes_other_requests_of_the_process(services: Services) -> None:
    async def scenario(store: Callable[[], S3BlobStore]) -> None:
        node = store()
        await node.create_upload("held")
        async with node.hold_upload("held"):
            with pytest.raises(UploadBusy):
                async with node.hold_upload("held"):
                    pass
        async with node.hold_upload("held"):
            pass

    run(services, scenario)
