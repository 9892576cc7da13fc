"""What only the S3 driver does: copies in parts above a threshold, presigned redirects that
can be turned off, and an unreachable store reported as unavailable (503), not as a bug."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace

import pytest
from botocore.exceptions import ClientError

from dockyard.oci.digest import Digest
from dockyard.storage.base import StoreUnusable
from dockyard.storage.s3.driver import MIN_CHUNK_SIZE, S3BlobStore, S3Options, StorageUnavailable
from tests.backends import S3_CHUNK_SIZE, Services
from tests.blobs import chunks, collect, s3_options
from tests.nodes import run_on_nodes
from tests.server import free_port

Scenario = Callable[[Callable[[], S3BlobStore]], Awaitable[None]]


@pytest.fixture
def options(services: Services) -> S3Options:
    """A prefix of its own for each test, in the bucket of the session's moto server."""
    return s3_options(services, f"unit-{secrets.token_hex(4)}")


def run(options: S3Options, scenario: Scenario) -> None:
    run_on_nodes(lambda: S3BlobStore(options), scenario)


@pytest.mark.parametrize("in_parts", [True, False], ids=["in-parts", "in-one-request"])
def test_a_blob_is_copied_into_place_by_digest_in_parts_above_the_threshold(
        services: Services, options: S3Options, in_parts: bool) -> None:
    data = secrets.token_bytes(S3_CHUNK_SIZE + 4096)
    digest = Digest.of(data)
    if in_parts:
        options = replace(options, copy_threshold=S3_CHUNK_SIZE, copy_chunk_size=S3_CHUNK_SIZE)

    async def scenario(nodes: Callable[[], S3BlobStore]) -> None:
        store = nodes()
        await store.create_upload("u3")
        await store.append_upload("u3", 0, chunks([data]))
        await store.commit_upload("u3", digest)
        assert await collect(store.read(digest)) == data

    run(options, scenario)
    key = f"{options.root}/blobs/sha256/{digest.hex[:2]}/{digest.hex}"
    stored = services.moto.client().head_object(Bucket=options.bucket, Key=key)
    assert stored["ContentLength"] == len(data)
    etag = stored["ETag"].strip('"')
    # A multipart object's ETag ends in its part count; a single copy's is a plain MD5.
    assert etag.endswith("-2") if in_parts else "-" not in etag


def test_redirects_can_be_turned_off(options: S3Options) -> None:
    async def scenario(nodes: Callable[[], S3BlobStore]) -> None:
        assert await nodes().redirect_url(Digest.of(b"x")) is None

    run(replace(options, redirect=False), scenario)


async def collect_all(stream: AsyncIterator[object]) -> list[object]:
    return [item async for item in stream]


OPERATIONS: dict[str, Callable[[S3BlobStore], Awaitable[object]]] = {
    # A request, a streamed read, a paginated listing, a write: every way the driver calls S3.
    "stat": lambda store: store.stat(Digest.of(b"x")),
    "read": lambda store: collect(store.read(Digest.of(b"x"))),
    "list_blobs": lambda store: collect_all(store.list_blobs()),
    "create_upload": lambda store: store.create_upload("u1"),
}


@pytest.mark.parametrize("operation", sorted(OPERATIONS))
def test_an_unreachable_store_is_unavailable(options: S3Options, operation: str) -> None:
    async def scenario(nodes: Callable[[], S3BlobStore]) -> None:
        with pytest.raises(StorageUnavailable):
            await OPERATIONS[operation](nodes())

    run(replace(options, endpoint_url=f"http://127.0.0.1:{free_port()}"), scenario)


def test_a_refused_request_is_not_mistaken_for_an_outage(options: S3Options) -> None:
    async def scenario(nodes: Callable[[], S3BlobStore]) -> None:
        with pytest.raises(ClientError) as raised:
            await nodes().create_upload("u1")
        assert not isinstance(raised.value, StorageUnavailable)
        assert raised.value.response["Error"]["Code"] == "NoSuchBucket"

    run(replace(options, bucket="no-such-bucket"), scenario)


def test_parts_below_the_s3_minimum_are_refused(options: S3Options) -> None:
    with pytest.raises(ValueError, match="chunk size"):
        S3BlobStore(replace(options, chunk_size=MIN_CHUNK_SIZE - 1))


def test_a_missing_bucket_does_not_verify(options: S3Options) -> None:
    """A missing blob's HEAD answers 404 in a missing bucket too: only verify tells them apart."""
    async def scenario(nodes: Callable[[], S3BlobStore]) -> None:
        store = nodes()
        assert await store.stat(Digest.of(b"x")) is None  # what readiness used to ask
        with pytest.raises(StoreUnusable) as raised:
            await store.verify()
        assert str(raised.value) == (
            f"bucket 'no-such-bucket' does not exist at {options.endpoint_url}")

    run(replace(options, bucket="no-such-bucket"), scenario)

