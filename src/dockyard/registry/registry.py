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
from dockyard.registry.mirror.blobs import MirroredBlobs
from dockyard.registry.mirror.manifests import MirroredManifests, refuse_push
from dockyard.registry.mirror.observer import MirrorObserver, SilentObserver
from dockyard.registry.mirror.routing import Routes
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


@dataclass(frozen=True, slots=True)
class MirrorOptions:
    """The upstreams mirrored repositories come from, and who hears how it goes."""

    routes: Routes
    observer: MirrorObserver = field(default_factory=SilentObserver)


class Registry:
    def __init__(self, store: BlobStore, metadata: MetadataStore, options: RegistryOptions,
                 events: EventRecorder | None = None, mirror: MirrorOptions | None = None
                 ) -> None:
        self._store = store
        self._metadata = metadata
        self.events = events or EventRecorder(None)
        self.maintenance = metadata.maintenance()
        self.uploads = Uploads(store, metadata, self.events)
        self.routes = mirror.routes if mirror is not None else Routes()
        """The mirrored repositories' upstreams (none: every repository is local)."""
        self.blobs: Blobs
        self.manifests: Manifests
        if mirror is None or not mirror.routes:
            self.blobs = Blobs(store, metadata, options.delete_enabled, self.events)
            self.manifests = Manifests(
                metadata, options.manifest_max_bytes, options.delete_enabled,
                remove_referrers=options.remove_referrers, events=self.events,
                rules=options.manifest_rules)
        else:
            self.blobs = MirroredBlobs(store, metadata, self.maintenance.leases, self.uploads,
                                       mirror.routes, mirror.observer, options.delete_enabled,
                                       self.events)
            self.manifests = MirroredManifests(
                metadata, self.maintenance.mirror, mirror.routes, mirror.observer,
                options.manifest_max_bytes, options.delete_enabled,
                remove_referrers=options.remove_referrers, events=self.events,
                rules=options.manifest_rules)
        self.listings = Listings(metadata)
        self.readonly = ReadOnlySwitch(self.maintenance.settings, options.read_only)
        self.collector = GarbageCollector(store, self.maintenance.gc)
        self.purger = UploadPurger(store, self.maintenance.purge)
        self.checker = IntegrityChecker(store, self.maintenance.integrity)

    def refuse_push(self, repository: str) -> None:
        """Unsupported for a mirrored repository: its upstream is its only source."""
        refuse_push(self.routes, repository)

    async def close(self) -> None:
        for upstream in self.routes.upstreams:
            await upstream.remote.close()
        await self._metadata.close()
        await self._store.close()
