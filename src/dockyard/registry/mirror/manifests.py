"""Manifests of mirrored repositories: cached on first pull, tags revalidated after a TTL.

A manifest by digest never changes, so once cached it is served for good. A tag is served
from the cache until its TTL has passed, then a HEAD asks the upstream whether it moved; when
the upstream cannot be asked, the cached tag is served (logged and counted) rather than an
error. Manifests are stored without their blobs (those come on their own first pull), their
references recorded so GC keeps whatever of them gets cached.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterable
from datetime import UTC, datetime, timedelta

from dockyard.metadata.interfaces import MetadataStore, MirrorStore
from dockyard.metadata.records import ManifestRecord
from dockyard.oci import manifest as oci_manifest
from dockyard.oci.digest import Digest
from dockyard.registry.errors import (
    ManifestUnknown,
    RegistryError,
    RegistryErrors,
    Unsupported,
)
from dockyard.registry.events import EventContext, EventRecorder
from dockyard.registry.manifests import Manifests, PushedManifest, manifest_write
from dockyard.registry.mirror.calls import call, client_error
from dockyard.registry.mirror.flights import SingleFlight
from dockyard.registry.mirror.observer import MirrorObserver
from dockyard.registry.mirror.remote import (
    RemoteError,
    RemoteInvalid,
    RemoteManifest,
    RemoteNotFound,
    RemoteUnavailable,
)
from dockyard.registry.mirror.routing import Route, Routes
from dockyard.registry.validation import ManifestRules

log = logging.getLogger("dockyard.mirror")

PULL_MARK_INTERVAL = 60.0
"""Seconds between two records of one manifest's last pull by one process: eviction needs
the day, not the second, and a hot image must not cost a write per pull."""
MAX_REFERRERS = 256
"""Referrers fetched through per request: a subject with more is served what is cached."""


def refuse_push(routes: Routes, repository: str) -> None:
    """Mirrored repositories take no pushes: the upstream is their only source."""
    route = routes.route(repository)
    if route is not None:
        raise Unsupported(f"{repository} is a mirror of {route.upstream.name}: "
                          "it takes no pushes")


class MirroredManifests(Manifests):
    def __init__(self, metadata: MetadataStore, mirror: MirrorStore, routes: Routes,
                 observer: MirrorObserver, max_bytes: int, delete_enabled: bool,
                 remove_referrers: bool = False, events: EventRecorder | None = None,
                 rules: ManifestRules | None = None) -> None:
        super().__init__(metadata, max_bytes, delete_enabled, remove_referrers, events, rules)
        self._mirror = mirror
        self._routes = routes
        self._observer = observer
        self._flights: SingleFlight[ManifestRecord] = SingleFlight()
        self._pulls_marked: dict[tuple[str, str], float] = {}

    async def put(self, repository: str, reference: str, body: AsyncIterable[bytes],
                  content_type: str | None, extra_tags: list[str],
                  context: EventContext | None = None) -> PushedManifest:
        refuse_push(self._routes, repository)
        return await super().put(repository, reference, body, content_type, extra_tags,
                                 context)

    async def _find(self, repository: str, target: Digest | str) -> ManifestRecord | None:
        route = self._routes.route(repository)
        if route is None:
            return await super()._find(repository, target)
        cached = await super()._find(repository, target)
        name = route.upstream.name
        if cached is not None and (isinstance(target, Digest)
                                   or await self._fresh(repository, target, route)):
            self._observer.hit(name, "manifest")
            record = cached
        else:
            record, waited = await self._flights.run(
                (repository, str(target)),
                lambda: self._fetch(route, repository, target, cached))
            if waited:
                self._observer.coalesced(name, "manifest")
        await self._mark_pulled(repository, record.digest)
        return record

    async def _fresh(self, repository: str, tag: str, route: Route) -> bool:
        checked = await self._mirror.tag_checked_at(repository, tag)
        return checked is not None and (
            datetime.now(UTC) - checked < timedelta(seconds=route.upstream.tag_ttl))

    async def _fetch(self, route: Route, repository: str, target: Digest | str,
                     cached: ManifestRecord | None) -> ManifestRecord:
        """The manifest from the upstream (by tag: only if the tag moved), now cached."""
        upstream, remote = route.upstream, route.upstream.remote
        reference = str(target)
        try:
            if cached is not None:
                seen = await call(upstream, self._observer,
                                  lambda: remote.head_manifest(route.remote_repository,
                                                               reference))
                if str(seen.digest) == cached.digest:
                    await self._mirror.mark_tag_checked(repository, reference)
                    self._observer.hit(upstream.name, "manifest")
                    return cached
            fetched = await call(upstream, self._observer,
                                 lambda: remote.get_manifest(route.remote_repository,
                                                             reference))
        except RemoteNotFound:
            raise ManifestUnknown(detail={"reference": reference}) from None
        except RemoteUnavailable as exc:
            if cached is None:
                raise client_error(upstream, exc) from None
            log.warning("upstream %s cannot be reached (%s): serving %s:%s from the cache",
                        upstream.name, exc, repository, reference)
            self._observer.stale(upstream.name)
            return cached
        except RemoteError as exc:
            raise client_error(upstream, exc) from None
        self._observer.miss(upstream.name, "manifest")
        self._observer.upstream_bytes(upstream.name, len(fetched.content))
        tags = [] if isinstance(target, Digest) else [reference]
        record = await self._store(route, repository, fetched, tags)
        if tags:
            await self._mirror.mark_tag_checked(repository, reference)
        return record

    async def _store(self, route: Route, repository: str, fetched: RemoteManifest,
                     tags: list[str]) -> ManifestRecord:
        try:
            parsed = oci_manifest.parse(fetched.content, fetched.media_type)
        except oci_manifest.InvalidManifest as exc:
            raise client_error(route.upstream, RemoteInvalid(
                f"{route.remote_repository}@{fetched.digest}: {exc}")) from None
        children = ((), tuple(str(child.digest) for child in parsed.children))
        write = manifest_write(fetched.digest, fetched.content, parsed, tags, children,
                               references_required=False)
        await self._metadata.put_manifest(repository, write)
        return ManifestRecord(str(fetched.digest), parsed.media_type, fetched.content)

    async def _mark_pulled(self, repository: str, digest: str) -> None:
        now = time.monotonic()
        key = (repository, digest)
        if now - self._pulls_marked.get(key, -PULL_MARK_INTERVAL) < PULL_MARK_INTERVAL:
            return
        self._pulls_marked[key] = now
        if len(self._pulls_marked) > 100_000:
            self._pulls_marked.clear()
        await self._mirror.mark_pulled(repository, [digest])

    async def refresh_referrers(self, repository: str, subject: Digest) -> None:
        """Cache the referrers the upstream lists for `subject` (signatures, SBOMs), so the
        local listing holds them; an upstream that cannot be asked leaves what is cached."""
        route = self._routes.route(repository)
        if route is None:
            return
        upstream, remote = route.upstream, route.upstream.remote
        try:
            index = await call(upstream, self._observer,
                               lambda: remote.get_referrers(route.remote_repository, subject))
        except RemoteError as exc:
            log.warning("upstream %s: referrers of %s@%s not fetched: %s",
                        upstream.name, repository, subject, exc)
            return
        if index is None:
            return
        try:
            listed = oci_manifest.parse(index, None).children
        except oci_manifest.InvalidManifest as exc:
            log.warning("upstream %s: referrers index of %s is unusable: %s",
                        upstream.name, subject, exc)
            return
        for descriptor in listed[:MAX_REFERRERS]:
            if await self._metadata.get_manifest(repository, str(descriptor.digest)):
                continue
            try:
                await self._find(repository, descriptor.digest)
            except (RegistryError, RegistryErrors) as exc:  # the others still list
                log.warning("upstream %s: referrer %s not cached: %s",
                            upstream.name, descriptor.digest, exc)
