"""Eviction: keeping each upstream's cache within its `maxage` and `maxsize`.

With `maxage`, every cached image not pulled for that long goes; with `maxsize`, the least
recently pulled images go until what the upstream's repositories hold fits. Evicting only
deletes the manifest rows and unlinks the blobs (`MirrorStore.evict`): the bytes are removed by
garbage collection, whose protocol (registry/gc.py) keeps a blob a concurrent pull is linking.
So `MirrorEviction` runs a GC right after anything was evicted (after waiting out one already
running, which may have passed the unlinked blobs), and owes one to its next run if that GC
fails: the space comes back within one eviction interval, whether or not GC is scheduled.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import aclosing
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from dockyard.metadata.interfaces import LeaseStore, MirrorStore
from dockyard.metadata.records import CachedImage
from dockyard.registry.gc import GCReport
from dockyard.registry.maintenance import LeaseBusy, run_exclusive
from dockyard.registry.mirror.holdings import held_bytes, owns
from dockyard.registry.mirror.routing import Routes, Upstream

log = logging.getLogger("dockyard.mirror")

BATCH = 100
"""Candidates read per query."""
GC_LEASE = "gc"
GC_WAIT_POLL = 1.0


@dataclass(frozen=True, slots=True)
class Evicted:
    upstream: str
    repository: str
    digest: str
    size: int
    """Approximate (CachedImage.size): layers shared with other images count here too."""
    reason: str
    """"maxage" or "maxsize"."""


@dataclass
class EvictionReport:
    evicted: list[Evicted] = field(default_factory=list)

    @property
    def size(self) -> int:
        return sum(item.size for item in self.evicted)


class Evictor:
    """Applies every upstream's `max_age` and `max_bytes` to the cache, once per run."""

    def __init__(self, routes: Routes, store: MirrorStore,
                 now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._routes = routes
        self._store = store
        self._now = now

    @property
    def needed(self) -> bool:
        """Whether any upstream has a limit: without one there is nothing to schedule."""
        return any(upstream.max_age is not None or upstream.max_bytes is not None
                   for upstream in self._routes.upstreams)

    async def run(self) -> EvictionReport:
        """Evict what the limits no longer allow; what was evicted, per upstream."""
        report = EvictionReport()
        for upstream in self._routes.upstreams:
            if upstream.max_age is not None:
                before = self._now() - timedelta(seconds=upstream.max_age)
                async for image in self._candidates(upstream, before):
                    await self._evict(upstream, image, "maxage", report)
            if upstream.max_bytes is not None:
                held = await held_bytes(self._routes, self._store, upstream)
                if held <= upstream.max_bytes:
                    continue
                async with aclosing(self._candidates(upstream, None)) as candidates:
                    async for image in candidates:
                        await self._evict(upstream, image, "maxsize", report)
                        held = await held_bytes(self._routes, self._store, upstream)
                        if held <= upstream.max_bytes:
                            break
        return report

    async def _candidates(self, upstream: Upstream, pulled_before: datetime | None
                          ) -> AsyncGenerator[CachedImage, None]:
        """The upstream's cached images, least recently pulled first, each offered once
        (the caller evicts some between pages). Another upstream's images, under a prefix
        that contains this one's, are passed over."""
        passed: set[tuple[str, str]] = set()
        while True:
            limit = len(passed) + BATCH
            page = await self._store.eviction_candidates(upstream.prefix, pulled_before, limit)
            for image in page:
                key = (image.repository, image.digest)
                if key in passed:
                    continue
                passed.add(key)
                if owns(self._routes, upstream, image.repository):
                    yield image
            if len(page) < limit:
                return

    async def _evict(self, upstream: Upstream, image: CachedImage, reason: str,
                     report: EvictionReport) -> None:
        if not await self._store.evict(image.repository, image.digest):
            return  # deleted meanwhile
        log.info("evicted %s@%s from the %s cache (%s, about %d bytes, last pulled %s)",
                 image.repository, image.digest, upstream.name, reason, image.size,
                 image.last_pulled_at.isoformat() if image.last_pulled_at else "never")
        report.evicted.append(Evicted(upstream.name, image.repository, image.digest,
                                      image.size, reason))


@dataclass(frozen=True, slots=True)
class EvictionOutcome:
    evicted: EvictionReport
    collected: GCReport | None
    """The GC run after evicting; None when nothing was evicted (and no GC was owed)."""


class MirrorEviction:
    """Eviction followed by the GC that frees what it unlinked."""

    def __init__(self, evictor: Evictor, leases: LeaseStore,
                 collect: Callable[[], Awaitable[GCReport]]) -> None:
        self._evictor = evictor
        self._leases = leases
        self._collect = collect
        self._owed = False

    async def run(self) -> EvictionOutcome:
        """Evict, then GC if anything was evicted, now or by a run whose GC failed. A GC
        running elsewhere may have passed the unlinked blobs already, so this waits for it
        to finish and runs another."""
        report = await self._evictor.run()
        self._owed = self._owed or bool(report.evicted)
        if not self._owed:
            return EvictionOutcome(report, None)
        while True:
            try:
                collected = await run_exclusive(self._leases, GC_LEASE, self._collect)
            except LeaseBusy:
                await asyncio.sleep(GC_WAIT_POLL)
                continue
            self._owed = False
            return EvictionOutcome(report, collected)
