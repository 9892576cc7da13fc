"""The registry as the HTTP layer sees it: one object holding the services."""

from __future__ import annotations

from dataclasses import dataclass

from dockyard.metadata.store import MetadataStore
from dockyard.registry.blobs import Blobs
from dockyard.registry.listing import Listings
from dockyard.registry.manifests import Manifests
from dockyard.registry.uploads import Uploads
from dockyard.storage.base import BlobStore


@dataclass(frozen=True, slots=True)
class Policy:
    delete_enabled: bool = True
    manifest_max_bytes: int = 4 * 1024 * 1024


class Registry:
    def __init__(self, store: BlobStore, metadata: MetadataStore, policy: Policy) -> None:
        self._store = store
        self._metadata = metadata
        self.blobs = Blobs(store, metadata, policy.delete_enabled)
        self.uploads = Uploads(store, metadata)
        self.manifests = Manifests(metadata, policy.manifest_max_bytes, policy.delete_enabled)
        self.listings = Listings(metadata)

    async def close(self) -> None:
        await self._metadata.close()
        await self._store.close()
