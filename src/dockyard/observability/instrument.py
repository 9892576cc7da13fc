"""Time and count every call into the storage and metadata ports, without touching them.

Each wrapper implements its port method by method: an observed call hands the inner
coroutine (or stream) to that operation's observer, built once, so a call costs one extra
Python frame plus a histogram observation, and one coroutine layer (two when tracing, where
each call is also a span, a child of the request's span). Calls with no I/O worth a series
(a path computed in memory) or made once per process pass straight through.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from contextlib import AbstractAsyncContextManager
from functools import partial
from pathlib import Path
from typing import Any, Protocol, TypeVar

from prometheus_client import Counter, Gauge, Histogram

from dockyard.cache.base import Cache, Lookup
from dockyard.metadata.interfaces import MaintenanceStores, MetadataStore, PlaceBytes
from dockyard.metadata.records import (
    EventRow,
    ManifestRecord,
    ManifestWrite,
    ReferrerRecord,
    UploadRecord,
)
from dockyard.observability import metrics
from dockyard.observability.tracing import Tracer
from dockyard.oci.digest import Digest
from dockyard.storage.base import BlobStore, ChunkObserver, CommitCheck, StoredBlob

T = TypeVar("T")
Done = Callable[[float, bool], None]
"""Record one call: its duration in seconds and whether it failed."""


class _Observe(Protocol):
    """Observe one awaited call of an operation."""

    def __call__(self, result: Awaitable[T], /) -> Coroutine[Any, Any, T]: ...


class _ObserveStream(Protocol):
    """Observe one stream of an operation, from its first item to its end."""

    def __call__(self, stream: AsyncIterator[T], /) -> AsyncIterator[T]: ...


async def _timed(result: Awaitable[T], done: Done) -> T:
    start = time.perf_counter()
    try:
        value = await result
    except BaseException:
        done(time.perf_counter() - start, True)
        raise
    done(time.perf_counter() - start, False)
    return value


async def _timed_stream(stream: AsyncIterator[T], done: Done) -> AsyncIterator[T]:
    start = time.perf_counter()
    try:
        async for item in stream:
            yield item
    except BaseException:
        done(time.perf_counter() - start, True)
        raise
    done(time.perf_counter() - start, False)


async def _counted(result: Awaitable[T], done: Done, gauge: Gauge) -> T:
    gauge.inc()
    try:
        return await _timed(result, done)
    finally:
        gauge.dec()


async def _traced(result: Awaitable[T], observe: _Observe, tracer: Tracer, name: str) -> T:
    with tracer.start_as_current_span(name):
        return await observe(result)


class _Port:
    """What one port's calls feed: a histogram and an error counter, children looked up once."""

    def __init__(self, duration: Histogram, errors: Counter, labels: tuple[str, ...],
                 span_prefix: str, tracer: Tracer | None) -> None:
        self._duration = duration
        self._errors = errors
        self._labels = labels
        self._span_prefix = span_prefix
        self._tracer = tracer

    def _done(self, operation: str) -> Done:
        labels = (*self._labels, operation)
        observe = metrics.fast_observe(self._duration.labels(*labels))
        errors = self._errors.labels(*labels)

        def done(seconds: float, failed: bool) -> None:
            observe(seconds)
            if failed:
                errors.inc()

        return done

    def call(self, operation: str, in_progress: Gauge | None = None) -> _Observe:
        """The observer of `operation`'s calls; `in_progress` counts those under way."""
        done = self._done(operation)
        observe: _Observe = (partial(_timed, done=done) if in_progress is None
                             else partial(_counted, done=done, gauge=in_progress))
        if self._tracer is None:
            return observe
        return partial(_traced, observe=observe, tracer=self._tracer,
                       name=f"{self._span_prefix}.{operation}")

    def stream(self, operation: str) -> _ObserveStream:
        """The observer of `operation`'s streams (timed until the stream ends)."""
        return partial(_timed_stream, done=self._done(operation))


class InstrumentedBlobStore(BlobStore):
    """A BlobStore whose calls feed the storage metrics (labelled by driver)."""

    def __init__(self, inner: BlobStore, driver: str, tracer: Tracer | None = None) -> None:
        port = _Port(metrics.STORAGE_DURATION, metrics.STORAGE_ERRORS, (driver,), "storage",
                     tracer)
        self._inner = inner
        self._verify = port.call("verify")
        self._stat = port.call("stat")
        self._read = port.stream("read")
        self._redirect_url = port.call("redirect_url")
        self._list_blobs = port.stream("list_blobs")
        self._delete = port.call("delete")
        self._list_uploads = port.stream("list_uploads")
        self._delete_many = port.call("delete_many")
        self._create_upload = port.call("create_upload")
        self._upload_size = port.call("upload_size")
        # Receiving data: these two also count the uploads in progress.
        self._append_upload = port.call("append_upload", metrics.UPLOADS_IN_PROGRESS)
        self._append_and_commit = port.call("append_and_commit", metrics.UPLOADS_IN_PROGRESS)
        self._commit_if_absent = port.call("commit_if_absent")
        self._adopt_file = port.call("adopt_file")
        self._read_upload = port.stream("read_upload")
        self._commit_upload = port.call("commit_upload")
        self._delete_upload = port.call("delete_upload")

    def verify(self) -> Coroutine[Any, Any, None]:
        return self._verify(self._inner.verify())

    def stat(self, digest: Digest) -> Coroutine[Any, Any, int | None]:
        return self._stat(self._inner.stat(digest))

    def read(self, digest: Digest, offset: int = 0, length: int | None = None
             ) -> AsyncIterator[bytes]:
        return self._read(self._inner.read(digest, offset, length))

    def local_path(self, digest: Digest) -> Path | None:
        return self._inner.local_path(digest)

    def redirect_url(self, digest: Digest) -> Coroutine[Any, Any, str | None]:
        return self._redirect_url(self._inner.redirect_url(digest))

    def list_blobs(self) -> AsyncIterator[StoredBlob]:
        return self._list_blobs(self._inner.list_blobs())

    def delete(self, digest: Digest) -> Coroutine[Any, Any, None]:
        return self._delete(self._inner.delete(digest))

    def list_uploads(self) -> AsyncIterator[tuple[str, float]]:
        return self._list_uploads(self._inner.list_uploads())

    def delete_many(self, digests: Sequence[Digest]) -> Coroutine[Any, Any, int]:
        return self._delete_many(self._inner.delete_many(digests))

    def create_upload(self, upload_id: str) -> Coroutine[Any, Any, None]:
        return self._create_upload(self._inner.create_upload(upload_id))

    def hold_upload(self, upload_id: str) -> AbstractAsyncContextManager[None]:
        return self._inner.hold_upload(upload_id)

    def upload_size(self, upload_id: str) -> Coroutine[Any, Any, int]:
        return self._upload_size(self._inner.upload_size(upload_id))

    def append_upload(self, upload_id: str, offset: int, chunks: AsyncIterable[bytes],
                      observe: ChunkObserver | None = None) -> Coroutine[Any, Any, int]:
        return self._append_upload(self._inner.append_upload(upload_id, offset, chunks, observe))

    def append_and_commit(self, upload_id: str, offset: int, chunks: AsyncIterable[bytes],
                          observe: ChunkObserver, commit: CommitCheck
                          ) -> Coroutine[Any, Any, tuple[int, bool]]:
        return self._append_and_commit(
            self._inner.append_and_commit(upload_id, offset, chunks, observe, commit))

    def commit_if_absent(self, upload_id: str, digest: Digest) -> Coroutine[Any, Any, bool]:
        return self._commit_if_absent(self._inner.commit_if_absent(upload_id, digest))

    def adopt_file(self, path: Path, digest: Digest, link: bool = False
                   ) -> Coroutine[Any, Any, int]:
        return self._adopt_file(self._inner.adopt_file(path, digest, link))

    def read_upload(self, upload_id: str) -> AsyncIterator[bytes]:
        return self._read_upload(self._inner.read_upload(upload_id))

    def commit_upload(self, upload_id: str, digest: Digest) -> Coroutine[Any, Any, None]:
        return self._commit_upload(self._inner.commit_upload(upload_id, digest))

    def delete_upload(self, upload_id: str) -> Coroutine[Any, Any, None]:
        return self._delete_upload(self._inner.delete_upload(upload_id))

    def close(self) -> Coroutine[Any, Any, None]:
        return self._inner.close()


class InstrumentedMetadataStore:
    """A MetadataStore whose calls feed the database metrics. The maintenance stores it
    hands out are the inner store's, unobserved: their calls are few and long."""

    def __init__(self, inner: MetadataStore, tracer: Tracer | None = None) -> None:
        port = _Port(metrics.DATABASE_DURATION, metrics.DATABASE_ERRORS, (), "db", tracer)
        self._inner = inner
        self._repository_exists = port.call("repository_exists")
        self._list_repositories = port.call("list_repositories")
        self._linked_blob_size = port.call("linked_blob_size")
        self._mount_blob = port.call("mount_blob")
        self._unlink_blob = port.call("unlink_blob")
        self._create_upload = port.call("create_upload")
        self._get_upload = port.call("get_upload")
        self._touch_upload = port.call("touch_upload")
        self._delete_upload = port.call("delete_upload")
        self._complete_upload = port.call("complete_upload")
        self._get_manifest = port.call("get_manifest")
        self._resolve_tag = port.call("resolve_tag")
        self._put_manifest = port.call("put_manifest")
        self._delete_manifest = port.call("delete_manifest")
        self._delete_tag = port.call("delete_tag")
        self._list_tags = port.call("list_tags")
        self._list_referrers = port.call("list_referrers")

    def maintenance(self) -> MaintenanceStores:
        return self._inner.maintenance()

    def close(self) -> Coroutine[Any, Any, None]:
        return self._inner.close()

    def repository_exists(self, name: str) -> Coroutine[Any, Any, bool]:
        return self._repository_exists(self._inner.repository_exists(name))

    def list_repositories(self, last: str | None, limit: int
                          ) -> Coroutine[Any, Any, list[str]]:
        return self._list_repositories(self._inner.list_repositories(last, limit))

    def linked_blob_size(self, repository: str, digest: str
                         ) -> Coroutine[Any, Any, int | None]:
        return self._linked_blob_size(self._inner.linked_blob_size(repository, digest))

    def mount_blob(self, repository: str, digest: str, source: str,
                   events: Sequence[EventRow] = ()) -> Coroutine[Any, Any, int | None]:
        return self._mount_blob(self._inner.mount_blob(repository, digest, source, events))

    def unlink_blob(self, repository: str, digest: str,
                    events: Sequence[EventRow] = ()) -> Coroutine[Any, Any, bool]:
        return self._unlink_blob(self._inner.unlink_blob(repository, digest, events))

    def create_upload(self, upload_id: str, repository: str) -> Coroutine[Any, Any, None]:
        return self._create_upload(self._inner.create_upload(upload_id, repository))

    def get_upload(self, upload_id: str) -> Coroutine[Any, Any, UploadRecord | None]:
        return self._get_upload(self._inner.get_upload(upload_id))

    def touch_upload(self, upload_id: str) -> Coroutine[Any, Any, None]:
        return self._touch_upload(self._inner.touch_upload(upload_id))

    def delete_upload(self, upload_id: str) -> Coroutine[Any, Any, bool]:
        return self._delete_upload(self._inner.delete_upload(upload_id))

    def complete_upload(self, upload_id: str, repository: str, digest: str, size: int,
                        place_bytes: PlaceBytes | None = None, events: Sequence[EventRow] = (),
                        has_row: bool = True) -> Coroutine[Any, Any, None]:
        return self._complete_upload(self._inner.complete_upload(
            upload_id, repository, digest, size, place_bytes, events, has_row))

    def get_manifest(self, repository: str, digest: str
                     ) -> Coroutine[Any, Any, ManifestRecord | None]:
        return self._get_manifest(self._inner.get_manifest(repository, digest))

    def resolve_tag(self, repository: str, tag: str
                    ) -> Coroutine[Any, Any, ManifestRecord | None]:
        return self._resolve_tag(self._inner.resolve_tag(repository, tag))

    def put_manifest(self, repository: str, write: ManifestWrite,
                     events: Sequence[EventRow] = ()) -> Coroutine[Any, Any, None]:
        return self._put_manifest(self._inner.put_manifest(repository, write, events))

    def delete_manifest(self, repository: str, digest: str, remove_referrers: bool = False,
                        events: Sequence[EventRow] = ()) -> Coroutine[Any, Any, bool]:
        return self._delete_manifest(
            self._inner.delete_manifest(repository, digest, remove_referrers, events))

    def delete_tag(self, repository: str, tag: str,
                   events: Sequence[EventRow] = ()) -> Coroutine[Any, Any, bool]:
        return self._delete_tag(self._inner.delete_tag(repository, tag, events))

    def list_tags(self, repository: str, last: str | None, limit: int
                  ) -> Coroutine[Any, Any, list[str] | None]:
        return self._list_tags(self._inner.list_tags(repository, last, limit))

    def list_referrers(self, repository: str, subject: str, artifact_type: str | None,
                       last: str | None, limit: int
                       ) -> Coroutine[Any, Any, list[ReferrerRecord]]:
        return self._list_referrers(
            self._inner.list_referrers(repository, subject, artifact_type, last, limit))


class CountingCache(Cache):
    """Counts hits and misses of the shared cache as `dockyard_cache_requests_total`."""

    def __init__(self, inner: Cache, name: str) -> None:
        self._inner = inner
        self._hit = metrics.CACHE_REQUESTS.labels(name, "hit")
        self._miss = metrics.CACHE_REQUESTS.labels(name, "miss")

    async def get(self, scope: str, key: str) -> Lookup:
        found = await self._inner.get(scope, key)
        (self._miss if found.value is None else self._hit).inc()
        return found

    async def fill(self, scope: str, generation: str, key: str, value: bytes) -> None:
        await self._inner.fill(scope, generation, key, value)

    async def invalidate(self, scope: str) -> None:
        await self._inner.invalidate(scope)

    async def invalidate_all(self) -> None:
        await self._inner.invalidate_all()

    async def close(self) -> None:
        await self._inner.close()
