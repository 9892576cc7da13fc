"""Integrity check: re-hash every blob, find what is missing or corrupt, and what points at it.

`repair` unlinks blobs whose bytes cannot be served (through the same mark-and-sweep steps
as GC, so a concurrent upload of the same digest takes the row back and re-writes the
bytes). Manifests that name a missing blob stay: pushing the blob again heals them, and they
are listed so an operator knows which images to push again.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from dockyard.metadata.interfaces import IntegrityStore
from dockyard.oci.digest import Digest, InvalidDigest, new_hasher
from dockyard.storage.base import BlobStore, StoredBlob

BATCH = 200
DANGLING_LIMIT = 1000
ORPHAN_AGE = 3600.0
"""Stored bytes with no blob row are only reported (and repaired) once this old: younger ones
may belong to an upload that has put its bytes in place and is about to commit its row."""


@dataclass(frozen=True, slots=True)
class Problem:
    kind: str
    """missing, corrupt, size, dangling-blob, dangling-manifest"""
    digest: str
    detail: str


@dataclass
class CheckReport:
    blobs_total: int = 0
    blobs_checked: int = 0
    bytes_hashed: int = 0
    problems: list[Problem] = field(default_factory=list)
    repaired: int = 0
    orphans: list[Problem] = field(default_factory=list)
    """Bytes no metadata knows: wasted space, not lost content, so not a failure."""
    orphan_bytes: int = 0
    recent_unknown: int = 0
    """Stored files with no metadata yet, younger than ORPHAN_AGE: not judged, only counted."""
    listed: bool = True
    """False when the storage driver cannot list its blobs (orphans were not looked for)."""
    started: float = field(default_factory=time.monotonic)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.problems


Progress = Callable[[CheckReport], None]


class IntegrityChecker:
    def __init__(self, store: BlobStore, metadata: IntegrityStore) -> None:
        self._store = store
        self._metadata = metadata

    async def run(self, repair: bool = False, progress: Progress | None = None) -> CheckReport:
        report = CheckReport()
        report.blobs_total, _ = await self._metadata.count_blobs()
        after: str | None = None
        while True:
            rows = await self._metadata.live_blobs(after, BATCH)
            if not rows:
                break
            after = rows[-1].digest
            for row in rows:
                problem = await self._verify(row.digest, row.size, report)
                if problem is not None:
                    problem = await self._confirm(row.digest, row.size, report)
                report.blobs_checked += 1
                if problem is None:
                    continue
                report.problems.append(problem)
                if repair and await self._unlink(row.digest):
                    report.repaired += 1
            report.seconds = time.monotonic() - report.started
            if progress is not None:
                progress(report)
        await self._find_orphans(repair, report)
        for dangling in await self._metadata.dangling_references(DANGLING_LIMIT):
            kind = "dangling-blob" if dangling.kind == "blob" else "dangling-manifest"
            report.problems.append(Problem(
                kind, dangling.digest,
                f"{dangling.repository}@{dangling.manifest} names it but the repository "
                "does not hold it",
            ))
        report.seconds = time.monotonic() - report.started
        return report

    async def _confirm(self, digest: str, size: int, report: CheckReport) -> Problem | None:
        """GC may have collected the blob since this batch was listed: a blob is only broken
        if its row is still live once the problem was seen, and the problem is still there.

        The second reading is not added to `bytes_hashed`: those bytes were counted once."""
        if not await self._metadata.is_live(digest):
            return None
        return await self._verify(digest, size, None)

    async def _find_orphans(self, repair: bool, report: CheckReport) -> None:
        batch: list[StoredBlob] = []
        try:
            async for stored in self._store.list_blobs():
                batch.append(stored)
                if len(batch) >= BATCH:
                    await self._orphans(batch, repair, report)
                    batch = []
        except NotImplementedError:
            report.listed = False
            return
        await self._orphans(batch, repair, report)

    async def _orphans(self, batch: list[StoredBlob], repair: bool, report: CheckReport) -> None:
        known = await self._metadata.known_blobs([str(stored.digest) for stored in batch])
        old = time.time() - ORPHAN_AGE
        for stored in batch:
            if str(stored.digest) in known:
                continue
            if stored.modified > old:
                report.recent_unknown += 1
                continue
            report.orphans.append(Problem("orphan", str(stored.digest),
                                          f"{stored.size} bytes stored, no metadata"))
            report.orphan_bytes += stored.size
            if repair:
                await self._store.delete(stored.digest)
                report.repaired += 1

    async def _verify(self, digest_text: str, size: int,
                      report: CheckReport | None) -> Problem | None:
        try:
            digest = Digest.parse(digest_text)
        except InvalidDigest:
            return Problem("corrupt", digest_text, "not a digest this registry can verify")
        stored = await self._store.stat(digest)
        if stored is None:
            return Problem("missing", digest_text, "no bytes in storage")
        if stored != size:
            return Problem("size", digest_text, f"stored {stored} bytes, metadata says {size}")
        hasher = new_hasher(digest.algorithm)
        try:
            async for chunk in self._store.read(digest):
                hasher.update(chunk)
                if report is not None:
                    report.bytes_hashed += len(chunk)
        except FileNotFoundError:
            return Problem("missing", digest_text, "bytes vanished while reading")
        if hasher.hexdigest() != digest.hex:
            return Problem("corrupt", digest_text, f"content hashes to {hasher.hexdigest()}")
        return None

    async def _unlink(self, digest_text: str) -> bool:
        if not await self._metadata.drop_blob(digest_text):
            return False

        async def remove(texts: list[str]) -> int:
            with contextlib.suppress(InvalidDigest):
                return await self._store.delete_many([Digest.parse(text) for text in texts])
            return 0

        await self._metadata.finish_deletions([digest_text], remove)
        return True
