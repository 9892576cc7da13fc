"""The registry as the HTTP layer sees it: one object holding the services."""

from __future__ import annotations

from dataclasses import dataclass, field

from dockyard.metadata.interfaces import MetadataStore
from dockyard.registry.blobs import Blobs
from dockyard.registry.check import IntegrityChecker
from dockyard.registry.events import EventRecorder
from dockyard.registry.gc import GarbageCollector
from dockyard.registry.listings import Listings
from dockyard.registry.manifests import Manifests
from dockyard.registry.purge import UploadPurger
from dockyard.registry.readonly import ReadOnlySwitch
from dockyard.registry.uploads import Uploads
from dockyard.registry.validation import ManifestRules
from dockyard.storage.base import BlobStore


@dataclass(frozen=True, slots=True)
class RegistryOptions:
    """The settings the rules follow, from `storage.delete`, `limits` and `validation`."""

    delete_enabled: bool = True
    manifest_max_bytes: int = 4 * 1024 * 1024
    read_only: bool = False
    remove_referrers: bool = False
    """Deleting a manifest also deletes its referrers (storage.delete.referrers: remove)."""
    manifest_rules: ManifestRules = field(default_factory=ManifestRules)
    """Layer URLs and sparse indexes (validation.manifests)."""


class Registry:
    def __init__(self, store: BlobStore, metadata: MetadataStore, options: RegistryOptions,
                 events: EventRecorder | None = None) -> None:
        self._store = store
        self._metadata = metadata
        self.events = events or EventRecorder(None)
        self.blobs = Blobs(store, metadata, options.delete_enabled, self.events)
        self.uploads = Uploads(store, metadata, self.events)
        self.manifests = Manifests(metadata, options.manifest_max_bytes, options.delete_enabled,
                                   remove_referrers=options.remove_referrers, events=self.events,
                                   rules=options.manifest_rules)
        self.listings = Listings(metadata)
        self.maintenance = metadata.maintenance()
        self.readonly = ReadOnlySwitch(self.maintenance.settings, options.read_only)
        self.collector = GarbageCollector(store, self.maintenance.gc)
        self.purger = UploadPurger(store, self.maintenance.purge)
        self.checker = IntegrityChecker(store, self.maintenance.integrity)

    async def close(self) -> None:
        await self._metadata.close()
        await self._store.close()
