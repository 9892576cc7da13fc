"""Upload sessions: start, append chunks in order, complete with a verified digest.

Session facts live in the id, metadata and storage, so a session continues on any worker or
after a restart. Opening one only stages an empty upload under an id that names the
repository (registry/upload_ids.py); its metadata row is written by the first PATCH, from
which on purging and completion go by that row. A session completed by one PUT never has a
row: its staged bytes alone stand for it, purged as strays once they are old. Each process
keeps the running sha256 of sessions it served last, which spares re-reading the staged bytes
at completion in the usual case (one client, one connection).
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from dockyard.metadata.interfaces import MetadataStore, PlaceBytes
from dockyard.metadata.records import UploadGone, UploadRecord
from dockyard.oci.digest import CANONICAL_ALGORITHM, Digest, Hasher, new_hasher
from dockyard.registry import upload_ids
from dockyard.registry.errors import (
    BlobUploadInvalid,
    BlobUploadUnknown,
    DigestInvalid,
    SizeInvalid,
    UploadOutOfOrder,
)
from dockyard.registry.events import EventContext, EventRecorder
from dockyard.storage.base import BlobStore, UploadBusy, UploadMissing

HASHER_CACHE_SIZE = 1024
TOUCH_INTERVAL = timedelta(minutes=1)
"""A chunk refreshes its session (against upload purging) only if it was refreshed longer ago.

Purging works in hours (`uploadpurging.age`, a week by default), and the refresh was a write
transaction in every PATCH of a chunked push.
"""


@dataclass(frozen=True, slots=True)
class UploadState:
    id: str
    repository: str
    size: int


@dataclass(frozen=True, slots=True)
class Chunk:
    """A request body and what the client said about it."""

    body: AsyncIterable[bytes]
    content_range: tuple[int, int] | None = None
    content_length: int | None = None
    range_malformed: bool = False

    @property
    def expected_length(self) -> int | None:
        if self.content_range is not None:
            return self.content_range[1] - self.content_range[0] + 1
        return self.content_length


class _RunningHashes:
    """sha256 state of recent sessions, valid only at the offset it was taken."""

    def __init__(self) -> None:
        self._entries: OrderedDict[str, tuple[int, Hasher]] = OrderedDict()

    def at(self, upload_id: str, offset: int) -> Hasher | None:
        entry = self._entries.get(upload_id)
        if entry is not None and entry[0] == offset:
            return entry[1].copy()
        if offset == 0:
            return new_hasher(CANONICAL_ALGORITHM)
        return None

    def keep(self, upload_id: str, offset: int, hasher: Hasher) -> None:
        self._entries[upload_id] = (offset, hasher)
        self._entries.move_to_end(upload_id)
        while len(self._entries) > HASHER_CACHE_SIZE:
            self._entries.popitem(last=False)

    def take(self, upload_id: str, offset: int) -> Hasher | None:
        entry = self._entries.pop(upload_id, None)
        return entry[1] if entry is not None and entry[0] == offset else None


async def _exactly(body: AsyncIterable[bytes], expected: int | None) -> AsyncIterator[bytes]:
    """Pass the body through, failing if it is longer or shorter than announced."""
    seen = 0
    async for chunk in body:
        seen += len(chunk)
        if expected is not None and seen > expected:
            raise SizeInvalid(detail={"expected": expected})
        yield chunk
    if expected is not None and seen != expected:
        raise SizeInvalid(detail={"expected": expected, "received": seen})


def _written_meanwhile(upload_id: str, size: int) -> UploadOutOfOrder:
    return UploadOutOfOrder(upload_id, size, "another request is writing this upload")


def _refreshed_before(record: UploadRecord, interval: timedelta) -> bool:
    when = record.updated_at
    if when.tzinfo is None:  # SQLite keeps no zone; the store writes UTC
        when = when.replace(tzinfo=UTC)
    return datetime.now(UTC) - when >= interval


class Uploads:
    def __init__(self, store: BlobStore, metadata: MetadataStore,
                 events: EventRecorder | None = None) -> None:
        self._store = store
        self._metadata = metadata
        self._hashes = _RunningHashes()
        self._events = events or EventRecorder(None)

    async def start(self, repository: str) -> UploadState:
        upload_id = upload_ids.issue(repository)
        await self._store.create_upload(upload_id)
        return UploadState(upload_id, repository, 0)

    async def status(self, repository: str, upload_id: str) -> UploadState:
        state, _record = await self._session(repository, upload_id)
        return state

    async def _session(self, repository: str, upload_id: str
                       ) -> tuple[UploadState, UploadRecord | None]:
        """The session's state, and its row unless no chunk has been appended yet."""
        if not upload_ids.is_upload_id(upload_id):
            raise BlobUploadUnknown(detail={"uuid": upload_id})
        record = await self._metadata.get_upload(upload_id)
        if (record.repository != repository if record is not None
                else not upload_ids.issued_for(upload_id, repository)):
            raise BlobUploadUnknown(detail={"uuid": upload_id})
        try:
            size = await self._store.upload_size(upload_id)
        except UploadMissing as exc:
            raise BlobUploadUnknown(detail={"uuid": upload_id}) from exc
        return UploadState(upload_id, repository, size), record

    @contextlib.asynccontextmanager
    async def _held(self, repository: str, upload_id: str
                    ) -> AsyncIterator[tuple[UploadState, UploadRecord | None]]:
        """The session, for this request alone until the block ends.

        A second request writing the same session meanwhile (a client sending chunks in
        parallel, or retrying one it thinks lost) is answered as out of order: its bytes
        would interleave with these under one running hash.
        """
        if not upload_ids.is_upload_id(upload_id):
            raise BlobUploadUnknown(detail={"uuid": upload_id})
        try:
            async with self._store.hold_upload(upload_id):
                yield await self._session(repository, upload_id)
        except UploadMissing as exc:
            raise BlobUploadUnknown(detail={"uuid": upload_id}) from exc
        except UploadBusy as exc:
            state = await self.status(repository, upload_id)
            raise _written_meanwhile(upload_id, state.size) from exc

    async def append(self, repository: str, upload_id: str, chunk: Chunk) -> UploadState:
        async with self._held(repository, upload_id) as (state, record):
            if record is None:  # from now on purging goes by the row, which chunks refresh
                await self._metadata.create_upload(upload_id, repository)
            state, _committed = await self._write(state, chunk)
            if record is not None and _refreshed_before(record, TOUCH_INTERVAL):
                await self._metadata.touch_upload(upload_id)
            return state

    async def _write(self, state: UploadState, chunk: Chunk, commit_as: Digest | None = None
                     ) -> tuple[UploadState, bool]:
        """Stream `chunk` onto the session's staged bytes, hashing as it goes.

        With `commit_as`, the bytes also become that blob if they hash to it and it is not
        stored yet; the second value says whether they did.
        """
        upload_id = state.id
        if chunk.range_malformed:
            raise UploadOutOfOrder(upload_id, state.size, "malformed Content-Range")
        if chunk.content_range is not None:
            start, end = chunk.content_range
            if start != state.size or end < start:
                raise UploadOutOfOrder(upload_id, state.size,
                                       f"chunk must start at byte {state.size}")
            if chunk.content_length is not None and chunk.content_length != end - start + 1:
                raise UploadOutOfOrder(upload_id, state.size,
                                       "Content-Range does not match Content-Length")
        hasher = self._hashes.at(upload_id, state.size)
        body = _exactly(chunk.body, chunk.expected_length)
        committed = False
        try:
            if hasher is None:
                size = await self._store.append_upload(upload_id, state.size, body)
            elif commit_as is None or commit_as.algorithm != CANONICAL_ALGORITHM:
                size = await self._store.append_upload(upload_id, state.size, body,
                                                       hasher.update)
            else:
                size, committed = await self._store.append_and_commit(
                    upload_id, state.size, body, hasher.update,
                    lambda: commit_as if hasher.hexdigest() == commit_as.hex else None)
        except UploadMissing as exc:
            raise BlobUploadUnknown(detail={"uuid": upload_id}) from exc
        except UploadBusy as exc:
            raise _written_meanwhile(upload_id, state.size) from exc
        if hasher is not None:
            self._hashes.keep(upload_id, size, hasher)
        return UploadState(upload_id, state.repository, size), committed

    async def complete(self, repository: str, upload_id: str, digests: list[Digest],
                       last_chunk: Chunk | None, context: EventContext | None = None) -> Digest:
        """Append the final chunk, verify every digest given, then commit and link the blob."""
        async with self._held(repository, upload_id) as (state, record):
            return await self._complete(state, digests, last_chunk, context, record is not None)

    async def _complete(self, state: UploadState, digests: list[Digest],
                        last_chunk: Chunk | None, context: EventContext | None,
                        has_row: bool) -> Digest:
        # The last chunk does not refresh the session (as `append` does against purging): the
        # session ends in this request, and ending it is what notices a purge (UploadGone).
        canonical = digests[0]
        # A body that is the whole blob, hashed on the way in, goes into place in the same
        # step as it is written (one thread hop fewer on a filesystem).
        renamed = False
        if last_chunk is not None:
            state, renamed = await self._write(
                state, last_chunk, canonical if len(digests) == 1 else None)
        repository, upload_id = state.repository, state.id
        for digest in digests:
            actual = await self._digest_of(upload_id, digest.algorithm, state.size)
            if actual != digest:
                await self._discard(upload_id, has_row)
                raise DigestInvalid(detail={"digest": str(digest), "actual": str(actual)})
        # Usually the bytes go into place before the metadata transaction, so no fsync runs
        # under its lock. `place_bytes` re-checks them under the blob row's lock, the moment GC
        # can no longer delete them (registry/gc.py), and writes the staged copy if GC won.
        if not renamed:
            renamed = await self._store.commit_if_absent(upload_id, canonical)

        async def place_bytes() -> None:
            if await self._store.stat(canonical) is not None:
                return
            if renamed:
                raise BlobUploadInvalid("the blob was garbage collected while it was completed;"
                                        " push it again", detail={"digest": str(canonical)})
            await self._store.commit_upload(upload_id, canonical)

        events = self._events.blob_pushed(context, repository, str(canonical), state.size)
        try:
            await self._metadata.complete_upload(upload_id, repository, str(canonical),
                                                 state.size, place_bytes, events=events,
                                                 has_row=has_row)
        except (UploadGone, UploadMissing) as exc:
            raise BlobUploadUnknown(detail={"uuid": upload_id}) from exc
        if events:
            self._events.committed()
        await self._store.delete_upload(upload_id)
        return canonical

    async def _digest_of(self, upload_id: str, algorithm: str, size: int) -> Digest:
        hasher = self._hashes.take(upload_id, size) if algorithm == CANONICAL_ALGORITHM else None
        if hasher is None:
            hasher = new_hasher(algorithm)
            async for data in self._store.read_upload(upload_id):
                hasher.update(data)
        return Digest(algorithm, hasher.hexdigest())

    async def cancel(self, repository: str, upload_id: str) -> None:
        async with self._held(repository, upload_id) as (_state, record):
            await self._discard(upload_id, record is not None)

    async def _discard(self, upload_id: str, has_row: bool) -> None:
        if has_row:
            await self._metadata.delete_upload(upload_id)
        await self._store.delete_upload(upload_id)
        self._hashes.take(upload_id, -1)

    async def upload_whole(self, repository: str, digest: Digest, chunk: Chunk,
                           context: EventContext | None = None) -> Digest:
        """A monolithic upload in one request (POST with ?digest=)."""
        state = await self.start(repository)
        try:
            return await self._complete(state, [digest], chunk, context, has_row=False)
        except BaseException:
            await self._store.delete_upload(state.id)
            raise

    async def adopt(self, repository: str, digest: Digest, path: Path, link: bool,
                    context: EventContext | None = None) -> int:
        """Link a blob from a local file another registry stored (a migration); the blob's
        size. The bytes are verified as a push's are (BlobMismatch otherwise, nothing
        linked); with `link` the store may hard-link the file instead of copying it."""
        size = await self._store.adopt_file(path, digest, link)

        async def place_bytes() -> None:  # GC may have taken them meanwhile; see _complete
            if await self._store.stat(digest) is None:
                await self._store.adopt_file(path, digest, link)

        await self.link_stored(repository, digest, size, place_bytes, context)
        return size

    async def link_stored(self, repository: str, digest: Digest, size: int,
                          place_bytes: PlaceBytes, context: EventContext | None = None
                          ) -> None:
        """Link bytes already in the store into a repository, as completing an upload does
        but with no session: `place_bytes` runs under the blob row's lock, where GC can no
        longer take them, and puts them back or raises if GC won meanwhile."""
        events = self._events.blob_pushed(context, repository, str(digest), size)
        await self._metadata.complete_upload("", repository, str(digest), size, place_bytes,
                                             events=events, has_row=False)
        if events:
            self._events.committed()
