"""Blobs in an S3-compatible object store, through aiobotocore.

Layout under the root prefix: `blobs/<alg>/<2 hex>/<hex>` for committed blobs and
`uploads/<id>/...` for staging. An upload keeps all of its state in the bucket, so any node
can continue it:

- `uploads/<id>/state` (JSON) names the S3 multipart upload, the parts written so far and the
  small pieces not yet folded into a part. Writing it is each append's commit point.
- `uploads/<id>/piece-<n>`: bytes that do not fill a part yet. S3 parts must be at least
  5 MiB (except the last) while clients often send 64 KiB chunks, so small chunks are kept as
  pieces and folded into the next part once `chunksize` bytes have gathered.
- `uploads/<id>/blob`: the whole staged blob once the multipart upload is completed, which is
  what completion re-hashes (on a node without the running hash) and copies into place.

A request that fails midway leaves the state object as it was: parts and pieces it wrote are
numbered after the last committed ones and are simply written over by the next append.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Callable,
    Coroutine,
    Iterator,
    Sequence,
)
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

from dockyard.oci.digest import Digest, InvalidDigest
from dockyard.storage.base import (
    BlobStore,
    ChunkObserver,
    StoredBlob,
    StoreUnusable,
    UploadBusy,
    UploadMissing,
)
from dockyard.unavailable import ServiceUnavailable

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client
    from types_aiobotocore_s3.type_defs import CompletedPartTypeDef, ObjectIdentifierTypeDef

log = logging.getLogger("dockyard.storage.s3.driver")
P = ParamSpec("P")
R = TypeVar("R")

MIN_CHUNK_SIZE = 5 * 1024 * 1024
"""S3's smallest part (except the last one)."""
MAX_SINGLE_COPY = 5 * 1024 * 1024 * 1024
"""CopyObject's limit; larger blobs are copied part by part."""
READ_CHUNK = 1 << 20
DELETE_BATCH = 1000
"""DeleteObjects' limit per request."""
NOT_FOUND = frozenset({"404", "NoSuchKey", "NotFound", "NoSuchUpload"})
BUSY = frozenset({"SlowDown", "ServiceUnavailable", "RequestTimeout", "InternalError"})


class StorageUnavailable(ServiceUnavailable):
    """The object store cannot be reached, or is overloaded, after the client's retries."""


@contextlib.contextmanager
def translated_errors() -> Iterator[None]:
    """Errors that mean the store is away, raised as StorageUnavailable (the API answers
    503); any other error as it is."""
    try:
        yield
    except (BotoConnectionError, HTTPClientError) as exc:
        raise StorageUnavailable(f"object store unreachable: {exc}") from exc
    except ClientError as exc:
        error = exc.response.get("Error", {})
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
        if status >= 500 or str(error.get("Code", "")) in BUSY:
            raise StorageUnavailable(f"object store failed: {exc}") from exc
        raise


def _translating(method: Callable[P, Coroutine[Any, Any, R]]
                 ) -> Callable[P, Coroutine[Any, Any, R]]:
    """A driver method whose store errors are translated (see `translated_errors`)."""

    @functools.wraps(method)
    async def call(*args: P.args, **kwargs: P.kwargs) -> R:
        with translated_errors():
            return await method(*args, **kwargs)

    return call


def translating_stream(method: Callable[P, AsyncGenerator[R, None]]
                        ) -> Callable[P, AsyncGenerator[R, None]]:
    """`_translating` for a method that streams (reads and listings); a reader that stops
    early closes the stream it wraps at once."""

    @functools.wraps(method)
    async def call(*args: P.args, **kwargs: P.kwargs) -> AsyncGenerator[R, None]:
        with translated_errors():
            async with contextlib.aclosing(method(*args, **kwargs)) as items:
                async for item in items:
                    yield item

    return call


@dataclass(frozen=True)
class S3Options:
    """What the driver needs; the composition root fills it from `storage.s3`."""

    bucket: str
    region: str = "us-east-1"
    endpoint_url: str | None = None
    force_path_style: bool = False
    access_key: str | None = None
    secret_key: str | None = None
    session_token: str | None = None
    root: str = ""
    chunk_size: int = 10 * 1024 * 1024
    copy_chunk_size: int = 32 * 1024 * 1024
    copy_threshold: int = 32 * 1024 * 1024
    copy_concurrency: int = 16
    storage_class: str | None = "STANDARD"
    encrypt: bool = False
    kms_key_id: str | None = None
    verify_tls: bool = True
    redirect: bool = True
    redirect_expiry_seconds: int = 1200
    max_connections: int = 100
    extra_put_arguments: dict[str, str] = field(default_factory=dict)
    user_agent: str | None = None
    """Leads the User-Agent of every request; None keeps the client library's own."""


@dataclass
class _UploadState:
    """The JSON in `uploads/<id>/state`."""

    multipart_id: str | None = None
    parts: list[str] = field(default_factory=list)
    """ETags of the parts written, part n at index n-1."""
    part_bytes: int = 0
    pieces: list[int] = field(default_factory=list)
    """Sizes of the pieces after the parts, in order."""
    next_piece: int = 0
    """Number of the next piece object; piece i of `pieces` is `next_piece - len(pieces) + i`."""
    staged: bool = False
    """The multipart upload is completed into `uploads/<id>/blob`."""

    @property
    def size(self) -> int:
        return self.part_bytes + sum(self.pieces)

    def piece_numbers(self) -> range:
        return range(self.next_piece - len(self.pieces), self.next_piece)

    def to_json(self) -> bytes:
        return json.dumps(
            {"multipart_id": self.multipart_id, "parts": self.parts,
             "part_bytes": self.part_bytes, "pieces": self.pieces,
             "next_piece": self.next_piece, "staged": self.staged}
        ).encode()

    @classmethod
    def from_json(cls, data: bytes) -> _UploadState:
        return cls(**json.loads(data))



def new_client(options: S3Options) -> AbstractAsyncContextManager[S3Client]:
    """A client for `options`' bucket; without keys, botocore's own chain finds credentials
    (the AWS_* environment variables, ~/.aws, an instance role)."""
    s3_options: dict[str, Any] = {
        "addressing_style": "path" if options.force_path_style else "auto"
    }
    config = AioConfig(
        s3=s3_options,
        signature_version="s3v4",
        max_pool_connections=options.max_connections,
        user_agent=options.user_agent,
        retries={"max_attempts": 3, "mode": "standard"},
    )
    client: AbstractAsyncContextManager[S3Client] = get_session().create_client(
        "s3",
        region_name=options.region,
        endpoint_url=options.endpoint_url,
        aws_access_key_id=options.access_key,
        aws_secret_access_key=options.secret_key,
        aws_session_token=options.session_token,
        verify=options.verify_tls,
        config=config,
    )
    return client


async def check_bucket(s3: S3Client, options: S3Options) -> None:
    """Raise StoreUnusable, saying why, unless the bucket exists and the keys may use it."""
    bucket = options.bucket
    where = options.endpoint_url or f"region {options.region}"
    try:
        await s3.head_bucket(Bucket=bucket)
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in NOT_FOUND or code == "NoSuchBucket":
            raise StoreUnusable(f"bucket {bucket!r} does not exist at {where}") from None
        if code in ("403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
            raise StoreUnusable(f"bucket {bucket!r} at {where}: access denied ({code}); "
                                "check the credentials") from None
        raise StoreUnusable(f"bucket {bucket!r} at {where}: {code or exc}") from None


async def object_size(s3: S3Client, bucket: str, key: str) -> int | None:
    """The object's size; None if there is no such object."""
    try:
        response = await s3.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if is_missing(exc):
            return None
        raise
    return int(response["ContentLength"])


def is_missing(exc: ClientError) -> bool:
    error = exc.response.get("Error", {})
    return str(error.get("Code", "")) in NOT_FOUND


class S3BlobStore(BlobStore):
    def __init__(self, options: S3Options) -> None:
        if options.chunk_size < MIN_CHUNK_SIZE:
            raise ValueError(f"chunk size must be at least {MIN_CHUNK_SIZE} bytes")
        self.options = options
        self._prefix = options.root.strip("/") + "/" if options.root.strip("/") else ""
        self._client: S3Client | None = None
        self._stack = AsyncExitStack()
        self._lock = asyncio.Lock()
        self._held: set[str] = set()

    # -- connection ---------------------------------------------------------------------------

    async def _s3(self) -> S3Client:
        """One client per process, made on first use (it needs the running event loop)."""
        if self._client is not None:
            return self._client
        async with self._lock:
            client = self._client
            if client is None:
                client = await self._stack.enter_async_context(self._new_client())
                self._client = client
        return client

    def _new_client(self) -> AbstractAsyncContextManager[S3Client]:
        return new_client(self.options)

    async def close(self) -> None:
        self._client = None
        await self._stack.aclose()

    # -- keys ---------------------------------------------------------------------------------

    def _blob_key(self, digest: Digest) -> str:
        return f"{self._prefix}blobs/{digest.algorithm}/{digest.hex[:2]}/{digest.hex}"

    def _upload_prefix(self, upload_id: str) -> str:
        return f"{self._prefix}uploads/{upload_id}/"

    def _state_key(self, upload_id: str) -> str:
        return self._upload_prefix(upload_id) + "state"

    def _piece_key(self, upload_id: str, number: int) -> str:
        return self._upload_prefix(upload_id) + f"piece-{number}"

    def _staged_key(self, upload_id: str) -> str:
        return self._upload_prefix(upload_id) + "blob"

    def _write_arguments(self) -> dict[str, Any]:
        """Storage class and encryption apply to every object Dockyard writes."""
        arguments: dict[str, Any] = dict(self.options.extra_put_arguments)
        if self.options.storage_class:
            arguments["StorageClass"] = self.options.storage_class
        if self.options.encrypt:
            arguments["ServerSideEncryption"] = "aws:kms" if self.options.kms_key_id else "AES256"
            if self.options.kms_key_id:
                arguments["SSEKMSKeyId"] = self.options.kms_key_id
        return arguments

    # -- blobs --------------------------------------------------------------------------------

    @_translating
    async def verify(self) -> None:
        await check_bucket(await self._s3(), self.options)

    @_translating
    async def stat(self, digest: Digest) -> int | None:
        return await object_size(await self._s3(), self.options.bucket,
                                 self._blob_key(digest))

    @translating_stream
    async def read(self, digest: Digest, offset: int = 0, length: int | None = None
                   ) -> AsyncGenerator[bytes, None]:
        try:
            async for chunk in self._read_key(self._blob_key(digest), offset, length):
                yield chunk
        except ClientError as exc:
            if is_missing(exc):  # deleted since it was looked up (GC): as on a filesystem
                raise FileNotFoundError(f"blob {digest} is no longer stored") from exc
            raise

    async def _read_key(self, key: str, offset: int, length: int | None
                        ) -> AsyncIterator[bytes]:
        if length == 0:
            return
        arguments: dict[str, Any] = {"Bucket": self.options.bucket, "Key": key}
        if offset or length is not None:
            end = "" if length is None else str(offset + length - 1)
            arguments["Range"] = f"bytes={offset}-{end}"
        s3 = await self._s3()
        response = await s3.get_object(**arguments)
        async with response["Body"] as body:
            async for chunk in body.iter_chunks(READ_CHUNK):
                yield chunk

    async def _get_bytes(self, key: str) -> bytes:
        return b"".join([chunk async for chunk in self._read_key(key, 0, None)])

    @_translating
    async def redirect_url(self, digest: Digest) -> str | None:
        if not self.options.redirect:
            return None
        s3 = await self._s3()
        return await s3.generate_presigned_url(
            "get_object",
            Params={"Bucket": self.options.bucket, "Key": self._blob_key(digest)},
            ExpiresIn=self.options.redirect_expiry_seconds,
        )

    @_translating
    async def delete(self, digest: Digest) -> None:
        s3 = await self._s3()
        await s3.delete_object(Bucket=self.options.bucket, Key=self._blob_key(digest))

    @translating_stream
    async def list_blobs(self) -> AsyncGenerator[StoredBlob, None]:
        s3 = await self._s3()
        prefix = f"{self._prefix}blobs/"
        paginator = s3.get_paginator("list_objects_v2")
        async for page in paginator.paginate(Bucket=self.options.bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                algorithm, _, name = item["Key"][len(prefix):].partition("/")
                try:
                    digest = Digest.parse(f"{algorithm}:{name.rpartition('/')[2]}")
                except InvalidDigest:
                    continue
                yield StoredBlob(digest, int(item["Size"]), item["LastModified"].timestamp())

    @translating_stream
    async def list_uploads(self) -> AsyncGenerator[tuple[str, float], None]:
        """Each upload's latest object decides its age: the state is rewritten per chunk."""
        s3 = await self._s3()
        prefix = f"{self._prefix}uploads/"
        latest: dict[str, float] = {}
        paginator = s3.get_paginator("list_objects_v2")
        async for page in paginator.paginate(Bucket=self.options.bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                upload_id = item["Key"][len(prefix):].partition("/")[0]
                modified = item["LastModified"].timestamp()
                latest[upload_id] = max(modified, latest.get(upload_id, modified))
        for upload_id in sorted(latest):
            yield upload_id, latest[upload_id]

    @_translating
    async def delete_many(self, digests: Sequence[Digest]) -> int:
        """Sizes by concurrent HEADs, then DeleteObjects in batches of a thousand."""
        limit = asyncio.Semaphore(self.options.copy_concurrency)

        async def size_of(digest: Digest) -> int:
            async with limit:
                return await self.stat(digest) or 0

        freed = sum(await asyncio.gather(*(size_of(digest) for digest in digests)))
        await self._delete_keys([self._blob_key(digest) for digest in digests])
        return freed

    # -- uploads ------------------------------------------------------------------------------

    async def _load(self, upload_id: str) -> _UploadState:
        try:
            return _UploadState.from_json(await self._get_bytes(self._state_key(upload_id)))
        except ClientError as exc:
            if is_missing(exc):
                raise UploadMissing(upload_id) from exc
            raise

    async def _save(self, upload_id: str, state: _UploadState) -> None:
        s3 = await self._s3()
        await s3.put_object(Bucket=self.options.bucket, Key=self._state_key(upload_id),
                            Body=state.to_json(), ContentType="application/json")

    @contextlib.asynccontextmanager
    async def hold_upload(self, upload_id: str) -> AsyncIterator[None]:
        """Within this process only: S3 has no lock another node would respect. Between
        nodes only the offset check in `append_upload` sees a race, and not every one."""
        if upload_id in self._held:
            raise UploadBusy(upload_id)
        self._held.add(upload_id)
        try:
            yield
        finally:
            self._held.discard(upload_id)

    @_translating
    async def create_upload(self, upload_id: str) -> None:
        await self._save(upload_id, _UploadState())

    @_translating
    async def upload_size(self, upload_id: str) -> int:
        return (await self._load(upload_id)).size

    @_translating
    async def append_upload(self, upload_id: str, offset: int, chunks: AsyncIterable[bytes],
                            observe: ChunkObserver | None = None) -> int:
        state = await self._load(upload_id)
        if state.staged or offset != state.size:
            raise UploadBusy(upload_id)
        buffer = bytearray()
        async for chunk in chunks:
            if observe is not None:
                observe(chunk)
            buffer += chunk
            if sum(state.pieces) + len(buffer) >= self.options.chunk_size:
                buffer = await self._write_part(upload_id, state, buffer)
        if buffer:
            await self._put_piece(upload_id, state, bytes(buffer))
        await self._save(upload_id, state)
        return state.size

    async def _put_piece(self, upload_id: str, state: _UploadState, data: bytes) -> None:
        s3 = await self._s3()
        await s3.put_object(Bucket=self.options.bucket,
                            Key=self._piece_key(upload_id, state.next_piece), Body=data)
        state.pieces.append(len(data))
        state.next_piece += 1

    async def _take_pieces(self, upload_id: str, state: _UploadState) -> bytes:
        """The pieces' bytes, which the caller folds into a part; the state forgets them."""
        data = b"".join([await self._get_bytes(self._piece_key(upload_id, number))
                         for number in state.piece_numbers()])
        state.pieces.clear()
        return data

    async def _write_part(self, upload_id: str, state: _UploadState, buffer: bytearray
                          ) -> bytearray:
        """Fold the pieces and the head of the buffer into one part; return what is left."""
        take = self.options.chunk_size - sum(state.pieces)
        body = await self._take_pieces(upload_id, state) + bytes(buffer[:take])
        await self._upload_part(upload_id, state, body)
        return buffer[take:]

    async def _upload_part(self, upload_id: str, state: _UploadState, body: bytes) -> None:
        s3 = await self._s3()
        if state.multipart_id is None:
            created = await s3.create_multipart_upload(
                Bucket=self.options.bucket, Key=self._staged_key(upload_id),
                **self._write_arguments(),
            )
            state.multipart_id = created["UploadId"]
        response = await s3.upload_part(
            Bucket=self.options.bucket, Key=self._staged_key(upload_id),
            UploadId=state.multipart_id, PartNumber=len(state.parts) + 1, Body=body,
        )
        state.parts.append(response["ETag"])
        state.part_bytes += len(body)

    async def _stage(self, upload_id: str) -> tuple[str, int, _UploadState]:
        """The key and size of one object holding all staged bytes (idempotent).

        A blob that fits in one piece is that piece; otherwise the pieces are folded into
        the last part and the multipart upload is completed (or, below one part, written
        as one object).
        """
        state = await self._load(upload_id)
        size = state.size
        if state.staged:
            return self._staged_key(upload_id), size, state
        if state.multipart_id is None and len(state.pieces) == 1:
            return self._piece_key(upload_id, state.piece_numbers()[0]), size, state
        s3 = await self._s3()
        if state.multipart_id is None:
            body = await self._take_pieces(upload_id, state)
            await s3.put_object(Bucket=self.options.bucket, Key=self._staged_key(upload_id),
                                Body=body)
        else:
            if state.pieces:
                await self._upload_part(upload_id, state, await self._take_pieces(upload_id,
                                                                                  state))
            await s3.complete_multipart_upload(
                Bucket=self.options.bucket, Key=self._staged_key(upload_id),
                UploadId=state.multipart_id,
                MultipartUpload={"Parts": [{"ETag": etag, "PartNumber": number}
                                           for number, etag in enumerate(state.parts, 1)]},
            )
        state.part_bytes, state.staged = size, True
        await self._save(upload_id, state)
        return self._staged_key(upload_id), size, state

    @translating_stream
    async def read_upload(self, upload_id: str) -> AsyncGenerator[bytes, None]:
        key, _, _ = await self._stage(upload_id)
        async for chunk in self._read_key(key, 0, None):
            yield chunk

    @_translating
    async def commit_upload(self, upload_id: str, digest: Digest) -> None:
        key, size, state = await self._stage(upload_id)
        await self._copy(key, self._blob_key(digest), size)
        # Every object the state names, without listing (pieces of failed appends, written
        # past the state, are left to upload purging, which deletes by prefix).
        names = [self._state_key(upload_id), self._staged_key(upload_id)]
        names += [self._piece_key(upload_id, number) for number in range(state.next_piece)]
        await self._delete_keys(names)

    async def _copy(self, source: str, target: str, size: int) -> None:
        """Server-side copy: one request up to the threshold, parts in parallel above it."""
        s3 = await self._s3()
        bucket = self.options.bucket
        if size <= min(self.options.copy_threshold, MAX_SINGLE_COPY):
            await s3.copy_object(Bucket=bucket, Key=target,
                                 CopySource={"Bucket": bucket, "Key": source},
                                 **self._write_arguments())
            return
        created = await s3.create_multipart_upload(Bucket=bucket, Key=target,
                                                   **self._write_arguments())
        multipart_id = created["UploadId"]
        step = self.options.copy_chunk_size
        limit = asyncio.Semaphore(self.options.copy_concurrency)

        async def copy_part(number: int, start: int) -> CompletedPartTypeDef:
            async with limit:
                end = min(start + step, size) - 1
                response = await s3.upload_part_copy(
                    Bucket=bucket, Key=target, UploadId=multipart_id, PartNumber=number,
                    CopySource={"Bucket": bucket, "Key": source},
                    CopySourceRange=f"bytes={start}-{end}",
                )
                return {"ETag": response["CopyPartResult"]["ETag"], "PartNumber": number}

        try:
            parts = await asyncio.gather(*(copy_part(number, start) for number, start
                                           in enumerate(range(0, size, step), 1)))
            await s3.complete_multipart_upload(Bucket=bucket, Key=target,
                                               UploadId=multipart_id,
                                               MultipartUpload={"Parts": list(parts)})
        except BaseException:
            with contextlib.suppress(ClientError):
                await s3.abort_multipart_upload(Bucket=bucket, Key=target,
                                                UploadId=multipart_id)
            raise

    @_translating
    async def delete_upload(self, upload_id: str) -> None:
        try:
            state: _UploadState | None = await self._load(upload_id)
        except UploadMissing:
            state = None
        await self._forget(upload_id, state)

    async def _forget(self, upload_id: str, state: _UploadState | None) -> None:
        """Abort the multipart upload, if any, and delete every object of the upload."""
        if state is not None and state.multipart_id is not None and not state.staged:
            s3 = await self._s3()
            with contextlib.suppress(ClientError):
                await s3.abort_multipart_upload(Bucket=self.options.bucket,
                                                Key=self._staged_key(upload_id),
                                                UploadId=state.multipart_id)
        await self._delete_prefix(self._upload_prefix(upload_id))

    async def _delete_prefix(self, prefix: str) -> None:
        s3 = await self._s3()
        bucket = self.options.bucket
        paginator = s3.get_paginator("list_objects_v2")
        async for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            await self._delete_keys([item["Key"] for item in page.get("Contents", [])])

    async def _delete_keys(self, names: list[str]) -> None:
        s3 = await self._s3()
        for start in range(0, len(names), DELETE_BATCH):
            keys: list[ObjectIdentifierTypeDef] = [
                {"Key": name} for name in names[start:start + DELETE_BATCH]
            ]
            await s3.delete_objects(Bucket=self.options.bucket,
                                    Delete={"Objects": keys, "Quiet": True})
