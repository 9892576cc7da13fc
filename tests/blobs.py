"""Request bodies and read-backs for blob store tests, and a blob store on the test S3 server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable

from dockyard.oci.digest import Digest, Hasher
from dockyard.storage.base import CommitCheck
from dockyard.storage.s3.driver import S3Options
from tests.backends import S3_BUCKET, S3_CHUNK_SIZE, S3_KEYS, Services


async def chunks(parts: Iterable[bytes], fail_after: int | None = None) -> AsyncIterator[bytes]:
    """A body arriving as `parts`; with `fail_after`, the client goes away after that many."""
    for index, part in enumerate(parts):
        if fail_after is not None and index == fail_after:
            raise ConnectionResetError("client went away")
        yield part


def pieces(data: bytes, size: int = 256 * 1024) -> list[bytes]:
    """`data` cut the way a socket delivers a large body."""
    return [data[start:start + size] for start in range(0, len(data), size)]


async def collect(stream: AsyncIterator[bytes]) -> bytes:
    return b"".join([chunk async for chunk in stream])


def commit_if(seen: Hasher, digest: Digest) -> CommitCheck:
    """What the registry passes to `append_and_commit`: `digest` if the body hashed to it."""
    return lambda: digest if seen.hexdigest() == digest.hex else None


def s3_options(services: Services, root: str) -> S3Options:
    """A store under `root` in the test bucket of the session's moto server; every store
    made with the same root is another node of one registry."""
    return S3Options(
        bucket=S3_BUCKET, endpoint_url=services.moto.endpoint, force_path_style=True,
        access_key=S3_KEYS["accesskey"], secret_key=S3_KEYS["secretkey"], root=root,
        chunk_size=S3_CHUNK_SIZE,
    )
