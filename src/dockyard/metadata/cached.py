"""The metadata stores with a shared cache in front of the hot reads of a pull.

Tag resolution, manifests by digest and blob links are cached per repository, positive
answers only (a miss is never cached, so a push needs no invalidation to become visible).
Every write that can change or remove a cached answer bumps the repository's generation
after its commit, which drops that repository's entries on every node at once; GC and the
integrity check's repair, which remove links and manifests in bulk, drop the whole cache
after each such step. Without a cache the SQL stores are used as they are.

The wrappers compose the stores they front. Methods no cached answer depends on are the
inner store's own bound methods, taken once at construction: they cost nothing per call.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime

from dockyard.cache.base import Cache
from dockyard.metadata.interfaces import (
    GCStore,
    IntegrityStore,
    MaintenanceStores,
    MetadataStore,
    MirrorStore,
)
from dockyard.metadata.records import (
    BlobRow,
    DeletedManifest,
    EventRow,
    ManifestRecord,
    ManifestWrite,
)

_SEPARATOR = b"\n"


def _encode_manifest(record: ManifestRecord) -> bytes:
    return record.digest.encode() + _SEPARATOR + record.media_type.encode() + _SEPARATOR + (
        record.content
    )


def _decode_manifest(data: bytes) -> ManifestRecord:
    digest, media_type, content = data.split(_SEPARATOR, 2)
    return ManifestRecord(digest.decode(), media_type.decode(), content)


class CachedMetadataStore:
    """A MetadataStore answering tag, manifest and blob-link reads from `cache` first."""

    def __init__(self, inner: MetadataStore, cache: Cache) -> None:
        self._inner = inner
        self._cache = cache
        self.repository_exists = inner.repository_exists
        self.list_repositories = inner.list_repositories
        self.mount_blob = inner.mount_blob  # adds a link: no cached answer goes stale
        self.create_upload = inner.create_upload
        self.get_upload = inner.get_upload
        self.touch_upload = inner.touch_upload
        self.delete_upload = inner.delete_upload
        self.complete_upload = inner.complete_upload  # adds a link, like mount_blob
        self.list_tags = inner.list_tags
        self.list_referrers = inner.list_referrers

    def maintenance(self) -> MaintenanceStores:
        """The inner stores, with GC, the integrity check and eviction dropping the cache."""
        inner = self._inner.maintenance()
        return dataclasses.replace(inner, gc=CachedGCStore(inner.gc, self._cache),
                                   integrity=CachedIntegrityStore(inner.integrity, self._cache),
                                   mirror=CachedMirrorStore(inner.mirror, self._cache))

    async def close(self) -> None:
        """Close the inner store, then the cache."""
        await self._inner.close()
        await self._cache.close()

    # -- cached reads -------------------------------------------------------------------------

    async def resolve_tag(self, repository: str, tag: str) -> ManifestRecord | None:
        """MetadataStore.resolve_tag, from the cache when it has the answer."""
        lookup = await self._cache.get(repository, "t:" + tag)
        if lookup.value is not None:
            return _decode_manifest(lookup.value)
        record = await self._inner.resolve_tag(repository, tag)
        if record is not None:
            await self._cache.fill(repository, lookup.generation, "t:" + tag,
                                   _encode_manifest(record))
        return record

    async def get_manifest(self, repository: str, digest: str) -> ManifestRecord | None:
        """MetadataStore.get_manifest, from the cache when it has the answer."""
        lookup = await self._cache.get(repository, "m:" + digest)
        if lookup.value is not None:
            return _decode_manifest(lookup.value)
        record = await self._inner.get_manifest(repository, digest)
        if record is not None:
            await self._cache.fill(repository, lookup.generation, "m:" + digest,
                                   _encode_manifest(record))
        return record

    async def linked_blob_size(self, repository: str, digest: str) -> int | None:
        """MetadataStore.linked_blob_size, from the cache when it has the answer."""
        lookup = await self._cache.get(repository, "b:" + digest)
        if lookup.value is not None:
            return int(lookup.value)
        size = await self._inner.linked_blob_size(repository, digest)
        if size is not None:
            await self._cache.fill(repository, lookup.generation, "b:" + digest,
                                   str(size).encode())
        return size

    # -- writes that can change or remove a cached answer -------------------------------------
    # The cache is dropped even when the write fails: it may have committed before the error.

    async def unlink_blob(self, repository: str, digest: str,
                          events: Sequence[EventRow] = ()) -> bool:
        """MetadataStore.unlink_blob, then the repository's cached answers go."""
        try:
            return await self._inner.unlink_blob(repository, digest, events)
        finally:
            await self._cache.invalidate(repository)

    async def put_manifest(self, repository: str, write: ManifestWrite,
                           events: Sequence[EventRow] = ()) -> None:
        """MetadataStore.put_manifest (it may move tags), then the repository's answers go."""
        try:
            await self._inner.put_manifest(repository, write, events)
        finally:
            await self._cache.invalidate(repository)

    async def delete_manifest(self, repository: str, digest: str,
                              remove_referrers: bool = False,
                              events: Sequence[EventRow] = ()) -> bool:
        """MetadataStore.delete_manifest, then the repository's cached answers go."""
        try:
            return await self._inner.delete_manifest(repository, digest, remove_referrers,
                                                     events)
        finally:
            await self._cache.invalidate(repository)

    async def delete_tag(self, repository: str, tag: str,
                         events: Sequence[EventRow] = ()) -> bool:
        """MetadataStore.delete_tag, then the repository's cached answers go."""
        try:
            return await self._inner.delete_tag(repository, tag, events)
        finally:
            await self._cache.invalidate(repository)


class CachedGCStore:
    """A GCStore dropping the whole cache after each step that removes links or manifests."""

    def __init__(self, inner: GCStore, cache: Cache) -> None:
        self._inner = inner
        self._cache = cache
        self.garbage_blobs = inner.garbage_blobs
        self.pending_deletions = inner.pending_deletions
        self.finish_deletions = inner.finish_deletions  # removes rows step 1 unlinked already
        self.blobs_freed_by = inner.blobs_freed_by
        self.repositories = inner.repositories
        self.manifest_graph = inner.manifest_graph

    async def mark_blobs_deleting(self, digests: Sequence[str],
                                  cutoff: datetime) -> list[BlobRow]:
        """GCStore.mark_blobs_deleting, then every cached answer goes."""
        try:
            return await self._inner.mark_blobs_deleting(digests, cutoff)
        finally:
            await self._cache.invalidate_all()

    async def delete_unreachable_manifests(self, repository_id: int, ids: Sequence[int],
                                           cutoff: datetime) -> list[DeletedManifest]:
        """GCStore.delete_unreachable_manifests, then every cached answer goes."""
        try:
            return await self._inner.delete_unreachable_manifests(repository_id, ids, cutoff)
        finally:
            await self._cache.invalidate_all()


class CachedIntegrityStore:
    """An IntegrityStore dropping the whole cache after the repair unlinks a blob."""

    def __init__(self, inner: IntegrityStore, cache: Cache) -> None:
        self._inner = inner
        self._cache = cache
        self.count_blobs = inner.count_blobs
        self.live_blobs = inner.live_blobs
        self.is_live = inner.is_live
        self.known_blobs = inner.known_blobs
        self.dangling_references = inner.dangling_references
        self.finish_deletions = inner.finish_deletions

    async def drop_blob(self, digest: str) -> bool:
        """IntegrityStore.drop_blob, then every cached answer goes."""
        try:
            return await self._inner.drop_blob(digest)
        finally:
            await self._cache.invalidate_all()


class CachedMirrorStore:
    """A MirrorStore dropping the repository's cached answers after an eviction."""

    def __init__(self, inner: MirrorStore, cache: Cache) -> None:
        self._inner = inner
        self._cache = cache
        self.tag_checked_at = inner.tag_checked_at
        self.mark_tag_checked = inner.mark_tag_checked
        self.mark_pulled = inner.mark_pulled
        self.eviction_candidates = inner.eviction_candidates
        self.cached_bytes = inner.cached_bytes

    async def evict(self, repository: str, digest: str) -> bool:
        """MirrorStore.evict (tags, manifests and links go), then the repository's answers."""
        try:
            return await self._inner.evict(repository, digest)
        finally:
            await self._cache.invalidate(repository)
