"""Blobs of mirrored repositories: fetched once, streamed to every waiting client, cached.

A blob not cached yet is downloaded by one task per process, which every request for it
joins (`flights.Broadcast`); across processes and nodes a lease in the database elects one
downloader and the others wait for the stored blob. The bytes go through the upload path,
so they are hashed on the way and committed only if they match the digest: a cut or corrupt
download is never cached, and the clients reading it see their response end short.
The download does not belong to any one client: it finishes and fills the cache when the
client that started it goes away.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator

from dockyard.metadata.interfaces import LeaseStore, MetadataStore
from dockyard.oci.digest import Digest
from dockyard.registry.blobs import BlobInfo, Blobs
from dockyard.registry.errors import BlobUnknown, RegistryError, RegistryErrors
from dockyard.registry.events import EventContext, EventRecorder
from dockyard.registry.maintenance import LeaseBusy, run_exclusive
from dockyard.registry.mirror.calls import client_error
from dockyard.registry.mirror.flights import Broadcast, DownloadFailed, ReaderDropped
from dockyard.registry.mirror.observer import MirrorObserver
from dockyard.registry.mirror.remote import RemoteError, RemoteNotFound
from dockyard.registry.mirror.routing import Route, Routes
from dockyard.registry.uploads import Chunk, Uploads
from dockyard.storage.base import BlobStore

log = logging.getLogger("dockyard.mirror")

LEASE_TTL = 30.0
"""The download lease, renewed while it runs: a dead downloader's is free this soon."""
WAIT_POLL = 0.05
"""How often a process that lost the lease looks for the blob the winner stores."""


class _Download:
    """One blob being fetched in this process, and every repository that asked for it."""

    def __init__(self, repository: str) -> None:
        loop = asyncio.get_running_loop()
        self.started: asyncio.Future[Broadcast | None] = loop.create_future()
        """The broadcast once the upstream answered; None when another process stores it."""
        self.done: asyncio.Future[None] = loop.create_future()
        self.repositories = {repository}
        self.task: asyncio.Task[None] | None = None


class _Reading:
    """A client's view of a download: the `registry.blobs.Download` the HTTP layer reads."""

    def __init__(self, blobs: MirroredBlobs, download: _Download, digest: Digest,
                 broadcast: Broadcast) -> None:
        self._blobs = blobs
        self._download = download
        self._digest = digest
        self._broadcast = broadcast

    @property
    def size(self) -> int | None:
        return self._broadcast.size

    async def read(self) -> AsyncIterator[bytes]:
        broadcast = self._broadcast
        if broadcast.accepting:
            sent = False
            try:
                async for chunk in broadcast.reader():
                    sent = True
                    yield chunk
                return
            except DownloadFailed as exc:
                if not sent and isinstance(exc.__cause__, RegistryError):
                    raise exc.__cause__ from None
                raise
            except ReaderDropped:
                if sent:
                    raise
        await asyncio.shield(self._download.done)
        async for chunk in self._blobs.stored(self._digest):
            yield chunk


class MirroredBlobs(Blobs):
    def __init__(self, store: BlobStore, metadata: MetadataStore, leases: LeaseStore,
                 uploads: Uploads, routes: Routes, observer: MirrorObserver,
                 delete_enabled: bool, events: EventRecorder | None = None) -> None:
        super().__init__(store, metadata, delete_enabled, events)
        self._leases = leases
        self._uploads = uploads
        self._routes = routes
        self._observer = observer
        self._downloads: dict[str, _Download] = {}

    def stored(self, digest: Digest) -> AsyncIterator[bytes]:
        """The whole stored blob (a download that finished without this reader)."""
        return self._store.read(digest)

    async def mount(self, repository: str, digest: Digest, source: str,
                    context: EventContext | None = None) -> bool:
        if self._routes.route(repository) is not None:
            return False  # the upload it falls back to is refused with a clear error
        return await super().mount(repository, digest, source, context)

    async def stat(self, repository: str, digest: Digest,
                   pulled_by: EventContext | None = None) -> BlobInfo:
        route = self._routes.route(repository)
        if route is None or await self._cached(repository, digest):
            if route is not None:
                self._observer.hit(route.upstream.name, "blob")
            return await super().stat(repository, digest, pulled_by)
        download = self._downloads.get(str(digest))
        if download is not None:
            download.repositories.add(repository)
            self._observer.coalesced(route.upstream.name, "blob")
        else:
            download = self._start(route, repository, digest)
        broadcast = await asyncio.shield(download.started)
        if broadcast is None:  # another process stored it: serve it as any stored blob,
            await asyncio.shield(download.done)  # with its length
            await self._cached(repository, digest)  # (linked even if it joined late)
            return await super().stat(repository, digest, pulled_by)
        reading = _Reading(self, download, digest, broadcast)
        size = reading.size
        if size is not None:
            self._events.blob_pulled(pulled_by, repository, str(digest), size)
        return BlobInfo(digest, size or 0, None, reading)

    async def _cached(self, repository: str, digest: Digest) -> bool:
        """Linked here, or stored for another repository (then linked here now)."""
        if await self._metadata.linked_blob_size(repository, str(digest)) is not None:
            return True
        size = await self._store.stat(digest)
        return size is not None and await self._link(repository, digest, size)

    async def _link(self, repository: str, digest: Digest, size: int) -> bool:
        """Link a stored blob; False if GC took it meanwhile."""
        async def still_stored() -> None:
            if await self._store.stat(digest) is None:
                raise BlobUnknown(detail={"digest": str(digest)})

        try:
            await self._uploads.link_stored(repository, digest, size, still_stored)
        except BlobUnknown:
            return False
        return True

    def _start(self, route: Route, repository: str, digest: Digest) -> _Download:
        download = _Download(repository)
        self._downloads[str(digest)] = download
        download.task = asyncio.create_task(self._run(route, digest, download))
        return download

    async def _run(self, route: Route, digest: Digest, download: _Download) -> None:
        name = _lease_name(digest)
        try:
            while True:
                try:
                    await run_exclusive(self._leases, name,
                                        lambda: self._fetch(route, digest, download),
                                        ttl=LEASE_TTL)
                    break
                except LeaseBusy:
                    if await self._wait_for_other(route, digest, download):
                        break
            await self._link_all(digest, download)
            if not download.done.done():
                download.done.set_result(None)
        except BaseException as exc:
            error = _for_client(route, exc, digest)
            for future in (download.started, download.done):
                if not future.done():
                    future.set_exception(error)
                    future.exception()  # retrieved: a waiter may be gone
            if not isinstance(exc, Exception):
                raise
        finally:
            del self._downloads[str(digest)]

    async def _wait_for_other(self, route: Route, digest: Digest, download: _Download
                              ) -> bool:
        """Another process downloads: True once it stored the blob, False if its lease
        ended without it (then this one tries)."""
        if not download.started.done():
            self._observer.coalesced(route.upstream.name, "blob")
        while True:
            if await self._store.stat(digest) is not None:
                if not download.started.done():
                    download.started.set_result(None)
                return True
            lease = await self._leases.lease(_lease_name(digest))
            if lease is None or lease.holder is None or lease.expired:
                return False
            await asyncio.sleep(WAIT_POLL)

    async def _fetch(self, route: Route, digest: Digest, download: _Download) -> None:
        if await self._store.stat(digest) is not None:  # stored while we took the lease
            download.started.set_result(None)
            return
        upstream = route.upstream
        started = time.monotonic()
        async with upstream.remote.open_blob(route.remote_repository, digest) as blob:
            self._observer.upstream_latency(upstream.name, time.monotonic() - started)
            broadcast = Broadcast(blob.size)
            download.started.set_result(broadcast)

            async def body() -> AsyncIterator[bytes]:
                async for chunk in blob.chunks():
                    self._observer.upstream_bytes(upstream.name, len(chunk))
                    await broadcast.publish(chunk)
                    yield chunk

            repository = next(iter(download.repositories))
            try:
                await self._uploads.upload_whole(
                    repository, digest, Chunk(body(), content_length=blob.size))
            except BaseException as exc:
                broadcast.fail(exc if isinstance(exc, Exception) else DownloadFailed("cancelled"))
                raise
        self._observer.miss(upstream.name, "blob")
        download.done.set_result(None)
        broadcast.finish()

    async def _link_all(self, digest: Digest, download: _Download) -> None:
        size = await self._store.stat(digest)
        if size is None:
            return
        for repository in download.repositories:
            if await self._metadata.linked_blob_size(repository, str(digest)) is None:
                await self._link(repository, digest, size)


def _lease_name(digest: Digest) -> str:
    """The download's lease: lease names hold 64 characters, and 56 hex digits of a digest
    are as unique as the whole for this purpose."""
    return f"mirror:{digest.hex[:56]}"


def _for_client(route: Route, error: BaseException, digest: Digest) -> BaseException:
    """What a reader of a failed download is told, logged once here."""
    if isinstance(error, RemoteNotFound):
        return BlobUnknown(detail={"digest": str(digest)})
    if isinstance(error, RemoteError):
        return client_error(route.upstream, error)
    if isinstance(error, (RegistryError, RegistryErrors)):
        log.warning("upstream %s: blob %s not cached: %s", route.upstream.name, digest,
                    error)
        return error
    if isinstance(error, Exception):
        log.warning("upstream %s: blob %s not cached: %r", route.upstream.name, digest, error)
        return error  # a backend's failure: answered as the HTTP layer answers it anywhere
    return DownloadFailed(f"download of {digest} failed")


