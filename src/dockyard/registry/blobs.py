"""Reading, deleting and mounting blobs a repository holds."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from dockyard.metadata.interfaces import MetadataStore
from dockyard.oci import reference
from dockyard.oci.digest import Digest
from dockyard.registry.errors import BlobUnknown, Unsupported
from dockyard.registry.events import EventContext, EventRecorder
from dockyard.storage.base import BlobStore


class Download(Protocol):
    """A blob on its way from an upstream (registry/mirror): served as it arrives."""

    @property
    def size(self) -> int | None:
        """The size the upstream announced, if it did."""
        ...

    def read(self) -> AsyncIterator[bytes]:
        """The whole blob from its first byte; ends short (ConnectionError) if the download
        breaks or does not verify."""
        ...


@dataclass(frozen=True, slots=True)
class BlobInfo:
    digest: Digest
    size: int
    local_path: Path | None
    download: Download | None = None
    """Set when the blob is not stored yet but being fetched: read it from here."""


class Blobs:
    def __init__(self, store: BlobStore, metadata: MetadataStore, delete_enabled: bool,
                 events: EventRecorder | None = None) -> None:
        self._store = store
        self._metadata = metadata
        self._delete_enabled = delete_enabled
        self._events = events or EventRecorder(None)

    async def stat(self, repository: str, digest: Digest,
                   pulled_by: EventContext | None = None) -> BlobInfo:
        """`pulled_by`: the caller fetches the bytes (a GET), which is a pull event."""
        size = await self._metadata.linked_blob_size(repository, str(digest))
        if size is None:
            raise BlobUnknown(detail={"digest": str(digest)})
        self._events.blob_pulled(pulled_by, repository, str(digest), size)
        return BlobInfo(digest, size, self._store.local_path(digest))

    async def redirect_url(self, digest: Digest) -> str | None:
        """Where clients may fetch the bytes themselves (a presigned URL), when the store can."""
        return await self._store.redirect_url(digest)

    def read(self, digest: Digest, offset: int, length: int) -> AsyncIterator[bytes]:
        return self._store.read(digest, offset, length)

    async def delete(self, repository: str, digest: Digest,
                     context: EventContext | None = None) -> None:
        """Unlink the blob from the repository; its bytes go when nothing else uses them."""
        if not self._delete_enabled:
            raise Unsupported("deletion is disabled on this registry")
        events = self._events.blob_deleted(context, repository, str(digest))
        if not await self._metadata.unlink_blob(repository, str(digest), events=events):
            raise BlobUnknown(detail={"digest": str(digest)})
        if events:
            self._events.committed()

    async def mount(self, repository: str, digest: Digest, source: str,
                    context: EventContext | None = None) -> bool:
        """Link a blob from `source`; False means the caller falls back to an upload."""
        if not reference.is_valid_name(source):
            return False
        # One transaction checks the source link and the blob's state, so GC cannot unlink
        # the blob between the check and the new link.
        if await self._store.stat(digest) is None:
            return False
        events = []
        if context is not None and self._events.enabled:
            # A blob's size never changes, so reading it ahead of the transaction is safe.
            size = await self._metadata.linked_blob_size(source, str(digest))
            if size is None:
                return False
            events = self._events.blob_mounted(context, repository, str(digest), size, source)
        mounted = await self._metadata.mount_blob(repository, str(digest), source,
                                                  events=events)
        if mounted is not None and events:
            self._events.committed()
        return mounted is not None
