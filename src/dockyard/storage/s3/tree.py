"""A folder tree kept as objects under a prefix of a bucket, read-only.

Another program's storage, not ours: the Go registry's s3 driver writes the file at
`<rootdirectory>/a/b/c` as the object `a/b/c` under the root prefix, and a folder exists only
as the common prefix of the objects in it. `S3Tree` reads such a tree by relative paths, the
way `registry/transfer/distribution.SourceTree` asks (it matches that Protocol without naming
it, as storage/ sits below registry/).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import AsyncExitStack
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from dockyard.storage.s3.driver import (
    READ_CHUNK,
    S3Options,
    check_bucket,
    is_missing,
    new_client,
    object_size,
    translated_errors,
    translating_stream,
)

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client

EMPTY_RANGE = "InvalidRange"
"""What S3 answers a ranged read of an empty object."""


class S3Tree:
    """The objects under `options.root` in `options.bucket`; open with `async with`, which
    checks that the bucket can be read (StoreUnusable says why not)."""

    def __init__(self, options: S3Options) -> None:
        self.options = options
        root = options.root.strip("/")
        self._prefix = f"{root}/" if root else ""
        self._stack = AsyncExitStack()
        self._client: S3Client | None = None

    async def __aenter__(self) -> S3Tree:
        client = await self._stack.enter_async_context(new_client(self.options))
        try:
            with translated_errors():
                await check_bucket(client, self.options)
        except BaseException:
            await self._stack.aclose()
            raise
        self._client = client
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        trace: TracebackType | None) -> None:
        self._client = None
        await self._stack.aclose()

    @property
    def _s3(self) -> S3Client:
        if self._client is None:
            raise RuntimeError("S3Tree used outside `async with`")
        return self._client

    def _key(self, path: str) -> str:
        return self._prefix + path.strip("/")

    def describe(self, path: str) -> str:
        """An s3:// address, which a message names to the operator."""
        return f"s3://{self.options.bucket}/{self._key(path)}"

    async def list_dirs(self, path: str) -> list[str]:
        """The common prefixes one level below `path`: the folders the driver's keys imply."""
        prefix = self._key(path) + "/" if path.strip("/") else self._prefix
        names: list[str] = []
        with translated_errors():
            paginator = self._s3.get_paginator("list_objects_v2")
            async for page in paginator.paginate(Bucket=self.options.bucket, Prefix=prefix,
                                                 Delimiter="/"):
                for common in page.get("CommonPrefixes", []):
                    name = common.get("Prefix", "")[len(prefix):].rstrip("/")
                    if name:
                        names.append(name)
        return sorted(names)

    async def read_small(self, path: str, limit: int) -> bytes | None:
        """At most `limit` bytes, by a ranged read: a stray huge object is never fetched."""
        if limit <= 0:
            return b""
        with translated_errors():
            try:
                response = await self._s3.get_object(Bucket=self.options.bucket,
                                                      Key=self._key(path),
                                                      Range=f"bytes=0-{limit - 1}")
            except ClientError as exc:
                if is_missing(exc):
                    return None
                if exc.response.get("Error", {}).get("Code") == EMPTY_RANGE:
                    return b""
                raise
            async with response["Body"] as body:
                return bytes(await body.read())

    async def size(self, path: str) -> int | None:
        with translated_errors():
            return await object_size(self._s3, self.options.bucket, self._key(path))

    def local_path(self, path: str) -> Path | None:
        """None: an object has no file to hard-link."""
        return None

    @translating_stream
    async def stream(self, path: str) -> AsyncGenerator[bytes, None]:
        """The object's bytes as they arrive; the reader hashes and verifies them."""
        arguments: dict[str, Any] = {"Bucket": self.options.bucket, "Key": self._key(path)}
        response = await self._s3.get_object(**arguments)
        async with response["Body"] as body:
            async for chunk in body.iter_chunks(READ_CHUNK):
                yield chunk
