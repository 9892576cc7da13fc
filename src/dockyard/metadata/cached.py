"""The metadata store with a shared cache in front of the hot reads of a pull.

Tag resolution, manifests by digest and blob links are cached per repository, positive
answers only (a miss is never cached, so a push needs no invalidation to become visible).
Every write through this store bumps the repository's generation after its commit, which
drops that repository's entries on every node at once; garbage collection, which removes links
and manifests in bulk through the lifecycle store, drops the whole cache after each such step.
Without a cache the plain MetadataStore is used.
"""

from __future__ import annotations

from typing import Any

from dockyard.cache.base import Cache
from dockyard.metadata.engine import Engines
from dockyard.metadata.lifecycle import LifecycleStore
from dockyard.metadata.records import ManifestRecord
from dockyard.metadata.store import MetadataStore

_SEPARATOR = b"\n"


def _encode_manifest(record: ManifestRecord) -> bytes:
    return record.digest.encode() + _SEPARATOR + record.media_type.encode() + _SEPARATOR + (
        record.content
    )


def _decode_manifest(data: bytes) -> ManifestRecord:
    digest, media_type, content = data.split(_SEPARATOR, 2)
    return ManifestRecord(digest.decode(), media_type.decode(), content)


class CachingMetadataStore(MetadataStore):
    def __init__(self, engines: Engines, cache: Cache) -> None:
        super().__init__(engines)
        self.cache = cache

    async def close(self) -> None:
        await super().close()
        await self.cache.close()

    def lifecycle(self) -> LifecycleStore:
        return CachingLifecycleStore(self.engines, self.cache)

    # -- cached reads -------------------------------------------------------------------------

    async def resolve_tag(self, repository: str, tag: str) -> ManifestRecord | None:
        lookup = await self.cache.get(repository, "t:" + tag)
        if lookup.value is not None:
            return _decode_manifest(lookup.value)
        record = await super().resolve_tag(repository, tag)
        if record is not None:
            await self.cache.fill(repository, lookup.generation, "t:" + tag,
                                  _encode_manifest(record))
        return record

    async def get_manifest(self, repository: str, digest: str) -> ManifestRecord | None:
        lookup = await self.cache.get(repository, "m:" + digest)
        if lookup.value is not None:
            return _decode_manifest(lookup.value)
        record = await super().get_manifest(repository, digest)
        if record is not None:
            await self.cache.fill(repository, lookup.generation, "m:" + digest,
                                  _encode_manifest(record))
        return record

    async def linked_blob_size(self, repository: str, digest: str) -> int | None:
        lookup = await self.cache.get(repository, "b:" + digest)
        if lookup.value is not None:
            return int(lookup.value)
        size = await super().linked_blob_size(repository, digest)
        if size is not None:
            await self.cache.fill(repository, lookup.generation, "b:" + digest,
                                  str(size).encode())
        return size

    # -- writes that can change or remove a cached answer -------------------------------------

    async def unlink_blob(self, repository: str, *args: Any, **kwargs: Any) -> bool:
        try:
            return await super().unlink_blob(repository, *args, **kwargs)
        finally:
            await self.cache.invalidate(repository)

    async def put_manifest(self, repository: str, *args: Any, **kwargs: Any) -> None:
        try:
            await super().put_manifest(repository, *args, **kwargs)
        finally:
            await self.cache.invalidate(repository)

    async def delete_manifest(self, repository: str, *args: Any, **kwargs: Any) -> bool:
        try:
            return await super().delete_manifest(repository, *args, **kwargs)
        finally:
            await self.cache.invalidate(repository)

    async def delete_tag(self, repository: str, *args: Any, **kwargs: Any) -> bool:
        try:
            return await super().delete_tag(repository, *args, **kwargs)
        finally:
            await self.cache.invalidate(repository)


class CachingLifecycleStore(LifecycleStore):
    """The maintenance queries, dropping the whole cache after each bulk removal."""

    def __init__(self, engines: Engines, cache: Cache) -> None:
        super().__init__(engines)
        self._cache = cache

    async def mark_blobs_deleting(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super().mark_blobs_deleting(*args, **kwargs)
        finally:
            await self._cache.invalidate_all()

    async def drop_blob(self, *args: Any, **kwargs: Any) -> bool:
        try:
            return await super().drop_blob(*args, **kwargs)
        finally:
            await self._cache.invalidate_all()

    async def delete_unreachable_manifests(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super().delete_unreachable_manifests(*args, **kwargs)
        finally:
            await self._cache.invalidate_all()
