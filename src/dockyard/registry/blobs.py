"""Reading, deleting and mounting blobs a repository holds."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from dockyard.metadata.store import MetadataStore
from dockyard.oci import reference
from dockyard.oci.digest import Digest
from dockyard.registry.errors import BlobUnknown, Unsupported
from dockyard.storage.base import BlobStore


@dataclass(frozen=True, slots=True)
class BlobInfo:
    digest: Digest
    size: int
    local_path: Path | None


class Blobs:
    def __init__(self, store: BlobStore, metadata: MetadataStore, delete_enabled: bool) -> None:
        self._store = store
        self._metadata = metadata
        self._delete_enabled = delete_enabled

    async def stat(self, repository: str, digest: Digest) -> BlobInfo:
        size = await self._metadata.linked_blob_size(repository, str(digest))
        if size is None:
            raise BlobUnknown(detail={"digest": str(digest)})
        return BlobInfo(digest, size, self._store.local_path(digest))

    def read(self, digest: Digest, offset: int, length: int) -> AsyncIterator[bytes]:
        return self._store.read(digest, offset, length)

    async def delete(self, repository: str, digest: Digest) -> None:
        """Unlink the blob from the repository; its bytes go when nothing else uses them."""
        if not self._delete_enabled:
            raise Unsupported("deletion is disabled on this registry")
        if not await self._metadata.unlink_blob(repository, str(digest)):
            raise BlobUnknown(detail={"digest": str(digest)})

    async def mount(self, repository: str, digest: Digest, source: str) -> bool:
        """Link a blob from `source`; False means the caller falls back to an upload."""
        if not reference.is_valid_name(source):
            return False
        size = await self._metadata.linked_blob_size(source, str(digest))
        if size is None or await self._store.stat(digest) is None:
            return False
        await self._metadata.link_blob(repository, str(digest), size)
        return True
