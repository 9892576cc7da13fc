"""Online garbage collection: reclaim blobs and untagged manifests while the registry serves.

What is garbage
    A blob is garbage when no manifest in any repository references it and no repository
    linked it (pushed or mounted it) within the grace period. With `delete_untagged`, a
    manifest is garbage when it is untagged, older than the grace period, and not reachable
    in its repository: roots are tagged and recent manifests (and, with the `keep` referrers
    policy, referrers whose subject is gone); reachability follows an index's children and a
    manifest's referrers. A reachable referrer does not keep its subject.

The protocol (each step one metadata transaction; see dockyard.metadata.gc)
    1. Mark: lock the candidate blob rows (FOR UPDATE), re-check references and young links
       with fresh statements, then delete the blob's links and set blobs.state = 'deleting'.
    2. Sweep: lock rows still 'deleting', delete their bytes, delete the rows, commit.
       A crash after the unlink leaves the rows marked; the next run (or this one, resumed)
       sweeps them again, deleting bytes being idempotent.
    Writers meet the same row lock. A manifest PUT takes FOR SHARE on its blobs' rows before
    it checks its repository's links: it commits first (GC then sees its references and keeps
    the blob) or it waits for step 1 and finds the links gone (MANIFEST_BLOB_UNKNOWN). Upload
    completion inserts or locks the blob row FOR UPDATE and sets it 'live' again if GC had
    marked it, then, still under the lock, checks the bytes and writes its staged copy if they
    are gone, then links; step 2 skips a row that is live again. Mounts lock the row FOR SHARE
    and only link a live blob. Hence "live" always implies "bytes stored", and a link or a
    reference never points at a blob GC is deleting. On SQLite writers are serialized by
    BEGIN IMMEDIATE; on PostgreSQL the row locks give the same order at READ COMMITTED.

Only one collector runs at a time (a lease row, see registry.maintenance), but that is for
efficiency: every step re-checks under locks, so two collectors would still be safe.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from dockyard.metadata.interfaces import GCStore
from dockyard.metadata.records import RepositoryGraph
from dockyard.oci.digest import Digest
from dockyard.storage.base import BlobStore

log = logging.getLogger("dockyard.gc")

BLOB_BATCH = 500
MANIFEST_BATCH = 200


@dataclass(frozen=True, slots=True)
class GCOptions:
    grace_period: float = 3600.0
    delete_untagged: bool = False
    dry_run: bool = False
    remove_orphan_referrers: bool = False
    """The `remove` referrers policy: a referrer whose subject is gone is not a root."""


@dataclass
class GCReport:
    dry_run: bool = False
    phase: str = "starting"
    manifests_removed: int = 0
    manifest_bytes: int = 0
    blobs_removed: int = 0
    bytes_reclaimed: int = 0
    resumed: int = 0
    """Blobs a previous, interrupted run had marked and this one swept."""
    started: float = field(default_factory=time.monotonic)
    seconds: float = 0.0

    def summary(self) -> str:
        verb = "would remove" if self.dry_run else "removed"
        return (f"{verb} {self.manifests_removed} manifests and {self.blobs_removed} blobs, "
                f"{'would reclaim' if self.dry_run else 'reclaimed'} "
                f"{format_bytes(self.bytes_reclaimed)} ({self.bytes_reclaimed} bytes) "
                f"in {self.seconds:.1f}s")


Progress = Callable[[GCReport], None]


def format_bytes(count: int) -> str:
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{count} B"


def unreachable(graph: RepositoryGraph, remove_orphan_referrers: bool) -> list[int]:
    """Ids of manifests nothing keeps, parents before the children they list."""
    by_digest = {node.digest: node for node in graph.nodes}
    by_id = {node.id: node for node in graph.nodes}
    referrers: dict[str, list[int]] = {}
    for node in graph.nodes:
        if node.subject is not None:
            referrers.setdefault(node.subject, []).append(node.id)
    roots = [
        node.id for node in graph.nodes
        if node.tagged or node.recent or (
            not remove_orphan_referrers and node.subject is not None
            and node.subject not in by_digest
        )
    ]
    seen = set(roots)
    queue = deque(roots)
    while queue:
        node = by_id[queue.popleft()]
        following = [by_digest[d].id for d in graph.children.get(node.id, []) if d in by_digest]
        following += referrers.get(node.digest, [])
        for other in following:
            if other not in seen:
                seen.add(other)
                queue.append(other)
    doomed = {node.id for node in graph.nodes if node.id not in seen}
    return _parents_first(doomed, graph)


def _parents_first(doomed: set[int], graph: RepositoryGraph) -> list[int]:
    """Kahn's order over the listing edges among doomed manifests (digests make no cycles)."""
    ids_by_digest = {node.digest: node.id for node in graph.nodes}
    incoming = dict.fromkeys(doomed, 0)
    edges: dict[int, list[int]] = {}
    for parent in doomed:
        for digest in graph.children.get(parent, []):
            child = ids_by_digest.get(digest)
            if child is not None and child in doomed:
                edges.setdefault(parent, []).append(child)
                incoming[child] += 1
    ready = deque(sorted(i for i, count in incoming.items() if count == 0))
    order: list[int] = []
    while ready:
        current = ready.popleft()
        order.append(current)
        for child in edges.get(current, []):
            incoming[child] -= 1
            if incoming[child] == 0:
                ready.append(child)
    return order


class GarbageCollector:
    def __init__(self, store: BlobStore, metadata: GCStore) -> None:
        self._store = store
        self._metadata = metadata

    async def run(self, options: GCOptions, progress: Progress | None = None) -> GCReport:
        report = GCReport(dry_run=options.dry_run)
        cutoff = datetime.now(UTC) - timedelta(seconds=options.grace_period)

        def tick(phase: str | None = None) -> None:
            if phase is not None:
                report.phase = phase
            report.seconds = time.monotonic() - report.started
            if progress is not None:
                progress(report)

        if not options.dry_run:
            tick("resuming")
            await self._sweep_pending(report, tick)
        doomed_manifests: list[int] = []
        if options.delete_untagged:
            tick("manifests")
            doomed_manifests = await self._collect_manifests(options, cutoff, report, tick)
        tick("blobs")
        await self._collect_blobs(options, cutoff, report, tick)
        if options.dry_run and doomed_manifests:
            freed = await self._metadata.blobs_freed_by(doomed_manifests, cutoff)
            report.blobs_removed += len(freed)
            report.bytes_reclaimed += sum(row.size for row in freed)
        tick("done")
        log.info("gc: %s", report.summary())
        return report

    async def remove_bytes(self, digests: list[str]) -> int:
        """Bytes actually freed, as the storage counts them (missing blobs free nothing)."""
        return await self._store.delete_many([Digest.parse(text) for text in digests])

    async def _sweep_pending(self, report: GCReport, tick: Callable[[], None]) -> None:
        while True:
            pending = await self._metadata.pending_deletions(BLOB_BATCH)
            if not pending:
                return
            done, freed = await self._metadata.finish_deletions(pending, self.remove_bytes)
            report.resumed += len(done)
            report.blobs_removed += len(done)
            report.bytes_reclaimed += freed
            tick()
            if not done:
                return  # rows reclaimed by uploads while we looked; nothing left to sweep

    async def _collect_manifests(self, options: GCOptions, cutoff: datetime, report: GCReport,
                                 tick: Callable[[], None]) -> list[int]:
        doomed_all: list[int] = []
        for repository_id, name in await self._metadata.repositories():
            graph = await self._metadata.manifest_graph(repository_id, name, cutoff)
            doomed = unreachable(graph, options.remove_orphan_referrers)
            if options.dry_run:
                sizes = {node.id: node.size for node in graph.nodes}
                report.manifests_removed += len(doomed)
                report.manifest_bytes += sum(sizes[i] for i in doomed)
                doomed_all += doomed
                tick()
                continue
            for start in range(0, len(doomed), MANIFEST_BATCH):
                deleted = await self._metadata.delete_unreachable_manifests(
                    repository_id, doomed[start:start + MANIFEST_BATCH], cutoff
                )
                report.manifests_removed += len(deleted)
                report.manifest_bytes += sum(item.size for item in deleted)
                for item in deleted:
                    log.debug("gc: removed manifest %s@%s", name, item.digest)
                tick()
        return doomed_all

    async def _collect_blobs(self, options: GCOptions, cutoff: datetime, report: GCReport,
                             tick: Callable[[], None]) -> None:
        after: str | None = None
        while True:
            candidates = await self._metadata.garbage_blobs(cutoff, after, BLOB_BATCH)
            if not candidates:
                return
            after = candidates[-1].digest
            if options.dry_run:
                report.blobs_removed += len(candidates)
                report.bytes_reclaimed += sum(row.size for row in candidates)
                tick()
                continue
            marked = await self._metadata.mark_blobs_deleting(
                [row.digest for row in candidates], cutoff
            )
            done, freed = await self._metadata.finish_deletions(
                [row.digest for row in marked], self.remove_bytes
            )
            report.blobs_removed += len(done)
            report.bytes_reclaimed += freed
            tick()
