"""The blob storage port every driver implements.

Blobs are immutable and keyed by digest; uploads are staged under an opaque id and become a
blob only through `commit_upload`, so nothing half-written is ever visible.
"""

from __future__ import annotations

import asyncio
import uuid
from abc import ABC, abstractmethod
from collections.abc import AsyncIterable, AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path

from dockyard.oci.digest import Digest, new_hasher

ChunkObserver = Callable[[bytes], None]
CommitCheck = Callable[[], Digest | None]
"""Asked once an append is written and observed: the digest to commit the upload as, if any."""


@dataclass(frozen=True, slots=True)
class StoredBlob:
    """One blob as a listing finds it."""

    digest: Digest
    size: int
    modified: float
    """Seconds since the epoch: a young file may belong to an upload about to commit."""


class UploadMissing(LookupError):
    """The staged upload does not exist (never created, committed or cancelled)."""


class UploadBusy(Exception):
    """Another request is writing the staged upload, or its size moved since it was read."""


class StoreUnusable(Exception):
    """The store cannot hold blobs as configured (no such bucket, access denied, a root that
    takes no files); the message names what and where."""


class BlobMismatch(ValueError):
    """A file offered as a blob does not hash to the digest it was offered as."""

    def __init__(self, path: Path, expected: Digest, actual: Digest) -> None:
        super().__init__(f"{path} does not hash to {expected} (it is {actual})")
        self.path = path
        self.expected = expected
        self.actual = actual


ADOPT_CHUNK = 1 << 20


async def file_chunks(path: Path) -> AsyncIterator[bytes]:
    """A local file's bytes in chunks, read in a thread so the event loop keeps serving."""
    handle = await asyncio.to_thread(open, path, "rb")
    with handle:
        while chunk := await asyncio.to_thread(handle.read, ADOPT_CHUNK):
            yield chunk


class BlobStore(ABC):
    """Where blob bytes live. tests/contract/storage/ holds every driver to this contract."""

    @abstractmethod
    async def verify(self) -> None:
        """Raise StoreUnusable unless blobs can be stored now.

        For start-up and readiness: a lookup proves little (on S3 a missing bucket answers
        a missing blob's HEAD with 404 like a missing key), so each driver checks its own.
        """

    @abstractmethod
    async def stat(self, digest: Digest) -> int | None:
        """The blob's size, or None when it is not stored."""

    @abstractmethod
    def read(self, digest: Digest, offset: int = 0, length: int | None = None
             ) -> AsyncIterator[bytes]:
        """Stream `length` bytes (to the end if None) of a stored blob from `offset` on."""

    def local_path(self, digest: Digest) -> Path | None:
        """A file holding exactly the blob, which the HTTP layer may send without copying
        through Python, if the driver has one."""
        return None

    async def redirect_url(self, digest: Digest) -> str | None:
        """A URL clients may fetch the blob from directly (presigned, Range requests
        honoured), if the driver has one and it is enabled."""
        return None

    def list_blobs(self) -> AsyncIterator[StoredBlob]:
        """Every stored blob, for `dockyard check` to find bytes no metadata knows.

        Optional: a driver that cannot list raises NotImplementedError and the check skips it.
        """
        raise NotImplementedError

    @abstractmethod
    async def delete(self, digest: Digest) -> None:
        """Remove a blob's bytes; deleting a missing blob is not an error."""

    def list_uploads(self) -> AsyncIterator[tuple[str, float]]:
        """(id, last modified) of every staged upload, for purging ones no session owns.

        Optional, like list_blobs.
        """
        raise NotImplementedError

    @abstractmethod
    async def delete_many(self, digests: Sequence[Digest]) -> int:
        """Remove many blobs (GC) in as few round trips as the driver can; returns the
        bytes that freed. Missing blobs free nothing and are no error."""

    @abstractmethod
    async def create_upload(self, upload_id: str) -> None:
        """Stage an empty upload under a new id, visible to every node from now on."""

    @abstractmethod
    def hold_upload(self, upload_id: str) -> AbstractAsyncContextManager[None]:
        """Use of a staged upload by one request at a time, across processes where the
        driver can: UploadBusy while another request holds it, UploadMissing if it is gone
        (at the latest from the first use inside the hold).

        Two chunks written at once would interleave their bytes under one running hash.
        Where the hold does not reach (another node), `append_upload` refusing a stale
        offset catches most such races but not all.
        """

    @abstractmethod
    async def upload_size(self, upload_id: str) -> int:
        """Bytes staged so far; raises UploadMissing."""

    @abstractmethod
    async def append_upload(self, upload_id: str, offset: int, chunks: AsyncIterable[bytes],
                            observe: ChunkObserver | None = None) -> int:
        """Write chunks at offset and return the new size.

        `observe` sees every chunk in order (the registry hashes there), possibly in a thread
        of its own while the chunks are being written. If writing or reading fails midway, the
        upload is cut back to `offset` so a failed request changes nothing. UploadBusy, with
        nothing changed, when the staged bytes do not end at `offset`: another request wrote
        since the caller read the size.
        """

    async def append_and_commit(self, upload_id: str, offset: int,
                                chunks: AsyncIterable[bytes], observe: ChunkObserver,
                                commit: CommitCheck) -> tuple[int, bool]:
        """`append_upload`, then `commit_upload` as the digest `commit()` names, if it names
        one and that blob is not stored yet. Returns the staged size and whether the bytes
        were committed; if not, the upload is still staged.

        A monolithic push ends this way. Drivers may do it in one step: on a filesystem the
        write, the flush and the rename share one thread hop.
        """
        size = await self.append_upload(upload_id, offset, chunks, observe)
        digest = commit()
        return size, digest is not None and await self.commit_if_absent(upload_id, digest)

    async def commit_if_absent(self, upload_id: str, digest: Digest) -> bool:
        """`commit_upload` unless the blob is stored already; whether it committed."""
        if await self.stat(digest) is not None:
            return False
        await self.commit_upload(upload_id, digest)
        return True

    async def adopt_file(self, path: Path, digest: Digest, link: bool = False) -> int:
        """Store the local file at `path` as the blob `digest`, once its bytes are verified to
        hash to it; returns the blob's size. Nothing is stored on BlobMismatch.

        For moving another registry's storage in: `link` asks for the file to be hard-linked
        into place instead of copied, where the driver can (a filesystem store on the same
        filesystem), so terabytes move without being written twice. This default copies
        through a staged upload, as a push does; a blob stored already is left as it is.
        """
        stored = await self.stat(digest)
        if stored is not None:
            return stored
        upload_id = str(uuid.uuid4())
        hasher = new_hasher(digest.algorithm)
        await self.create_upload(upload_id)
        try:
            size = await self.append_upload(upload_id, 0, file_chunks(path), hasher.update)
            actual = Digest(digest.algorithm, hasher.hexdigest())
            if actual != digest:
                raise BlobMismatch(path, digest, actual)
            await self.commit_if_absent(upload_id, digest)
        finally:
            await self.delete_upload(upload_id)
        return size

    @abstractmethod
    def read_upload(self, upload_id: str) -> AsyncIterator[bytes]:
        """Stream the staged bytes, to re-hash them when completing an upload whose running
        hash is not at hand (after a restart, or another worker's chunk). Only to complete:
        a driver may take no more appends after it (S3 completes its multipart upload)."""

    @abstractmethod
    async def commit_upload(self, upload_id: str, digest: Digest) -> None:
        """Make the staged bytes the blob `digest` atomically and forget the upload."""

    @abstractmethod
    async def delete_upload(self, upload_id: str) -> None:
        """Drop staged bytes; a missing upload is not an error."""

    async def close(self) -> None:  # noqa: B027 - optional hook, most drivers hold nothing
        """Release connections; nothing to do for most drivers."""
