"""The blob storage port every driver implements.

Blobs are immutable and keyed by digest; uploads are staged under an opaque id and become a
blob only through `commit_upload`, so nothing half-written is ever visible.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterable, AsyncIterator, Callable
from pathlib import Path

from dockyard.oci.digest import Digest

ChunkObserver = Callable[[bytes], None]


class UploadMissing(LookupError):
    """The staged upload does not exist (never created, committed or cancelled)."""


class BlobStore(ABC):
    @abstractmethod
    async def stat(self, digest: Digest) -> int | None:
        """The blob's size, or None when it is not stored."""

    @abstractmethod
    def read(self, digest: Digest, offset: int = 0, length: int | None = None
             ) -> AsyncIterator[bytes]:
        """Stream part or all of a stored blob."""

    def local_path(self, digest: Digest) -> Path | None:
        """A file the HTTP layer may send without copying through Python, if there is one."""
        return None

    @abstractmethod
    async def delete(self, digest: Digest) -> None:
        """Remove a blob's bytes; deleting a missing blob is not an error."""

    @abstractmethod
    async def create_upload(self, upload_id: str) -> None: ...

    @abstractmethod
    async def upload_size(self, upload_id: str) -> int:
        """Bytes staged so far; raises UploadMissing."""

    @abstractmethod
    async def append_upload(self, upload_id: str, offset: int, chunks: AsyncIterable[bytes],
                            observe: ChunkObserver | None = None) -> int:
        """Write chunks at offset and return the new size.

        `observe` sees every chunk in order (the registry hashes there). If writing or reading
        fails midway, the upload is cut back to `offset` so a failed request changes nothing.
        """

    @abstractmethod
    def read_upload(self, upload_id: str) -> AsyncIterator[bytes]:
        """Stream the staged bytes (to re-hash after a restart or another worker's chunk)."""

    @abstractmethod
    async def commit_upload(self, upload_id: str, digest: Digest) -> None:
        """Make the staged bytes the blob `digest` atomically and forget the upload."""

    @abstractmethod
    async def delete_upload(self, upload_id: str) -> None:
        """Drop staged bytes; a missing upload is not an error."""

    async def close(self) -> None:  # noqa: B027 - optional hook, most drivers hold nothing
        """Release connections; nothing to do for most drivers."""
