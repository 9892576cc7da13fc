"""Upload purging: sessions idle longer than `age` and their staged bytes are removed.

distribution's `storage.maintenance.uploadpurging`. The session row goes first, in a
statement that re-checks its age, so a client still appending (which refreshes the session)
is never purged, and a purged session answers BLOB_UPLOAD_UNKNOWN rather than half-working;
staged bytes are removed only while no request is writing them.
A session no chunk was appended to has no row (registry/uploads.py): its staged upload goes
with the strays once it is older than `age`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from dockyard.metadata.interfaces import UploadPurgeStore
from dockyard.storage.base import BlobStore, UploadBusy, UploadMissing

log = logging.getLogger("dockyard.purge")

BATCH = 500


@dataclass(frozen=True, slots=True)
class PurgeOptions:
    age: float = 168 * 3600.0
    dry_run: bool = False


@dataclass
class PurgeReport:
    dry_run: bool = False
    sessions: int = 0
    bytes: int = 0
    strays: int = 0
    """Staged uploads without a session row: sessions opened and never appended to, or bytes
    left by a crash."""


class UploadPurger:
    def __init__(self, store: BlobStore, metadata: UploadPurgeStore) -> None:
        self._store = store
        self._metadata = metadata

    async def run(self, options: PurgeOptions) -> PurgeReport:
        report = PurgeReport(dry_run=options.dry_run)
        cutoff = datetime.now(UTC) - timedelta(seconds=options.age)
        after: str | None = None
        while True:
            stale = await self._metadata.stale_uploads(cutoff, after, BATCH)
            if not stale:
                break
            after = stale[-1]
            for upload_id in stale:
                if options.dry_run:
                    report.sessions += 1
                    report.bytes += await self._staged_size(upload_id)
                    continue
                async with self._unless_written(upload_id) as idle:
                    if idle and await self._metadata.delete_stale_upload(upload_id, cutoff):
                        report.bytes += await self._staged_size(upload_id)
                        await self._store.delete_upload(upload_id)
                        report.sessions += 1
        await self._purge_strays(cutoff.timestamp(), options.dry_run, report)
        verb = "would purge" if options.dry_run else "purged"
        log.info("uploadpurging: %s %d sessions and %d stray uploads, %d staged bytes", verb,
                 report.sessions, report.strays, report.bytes)
        return report

    async def _purge_strays(self, cutoff: float, dry_run: bool, report: PurgeReport) -> None:
        """Old staged uploads without a session row; young ones may be a session in use."""
        old: list[str] = []
        try:
            async for upload_id, modified in self._store.list_uploads():
                if modified < cutoff:
                    old.append(upload_id)
        except NotImplementedError:
            return
        for start in range(0, len(old), BATCH):
            batch = old[start:start + BATCH]
            known = await self._metadata.known_uploads(batch)
            for upload_id in batch:
                if upload_id in known:
                    continue
                async with self._unless_written(upload_id) as idle:
                    if not idle:
                        continue
                    report.strays += 1
                    report.bytes += await self._staged_size(upload_id)
                    if not dry_run:
                        await self._store.delete_upload(upload_id)

    @contextlib.asynccontextmanager
    async def _unless_written(self, upload_id: str) -> AsyncIterator[bool]:
        """Holds the upload as a request would (BlobStore.hold_upload), so no chunk being
        written is removed under it; yields False while a request is writing it."""
        async with contextlib.AsyncExitStack() as stack:
            try:
                await stack.enter_async_context(self._store.hold_upload(upload_id))
            except UploadBusy:
                yield False
                return
            except UploadMissing:  # a row that outlived its bytes: nothing to hold
                pass
            yield True

    async def _staged_size(self, upload_id: str) -> int:
        try:
            return await self._store.upload_size(upload_id)
        except UploadMissing:
            return 0
