"""The metadata steps of garbage collection (the protocol is in dockyard.registry.gc).

Every transaction here is one step of the GC protocol described in dockyard.registry.gc. They
work on SQLite, where the write engine serializes writers with BEGIN IMMEDIATE, and on
PostgreSQL at READ COMMITTED, where the blob row is the lock every writer meets: GC takes it
FOR UPDATE before it re-checks and unlinks; upload completion, mounts and manifest PUTs take
it before they add a link or a reference. SQLAlchemy drops FOR UPDATE/FOR SHARE on SQLite.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, exists, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from dockyard.metadata.batches import in_chunks
from dockyard.metadata.engine import Engines
from dockyard.metadata.interfaces import GCStore, Remove
from dockyard.metadata.manifest_rows import delete_manifest_rows, listers_of
from dockyard.metadata.records import BlobRow, DeletedManifest, ManifestNode, RepositoryGraph
from dockyard.metadata.schema import (
    CHILD_REFERENCES,
    DELETING,
    LIVE,
    blobs,
    manifest_references,
    manifests,
    repositories,
    repository_blobs,
    tags,
)


async def lock_blobs(connection: AsyncConnection, digests: Sequence[str],
                      state: str) -> list[BlobRow]:
    """The blob rows among `digests` in `state`, locked FOR UPDATE in digest order (the order
    every writer locks them in, so two never wait on each other)."""
    rows = (await connection.execute(
        select(blobs.c.digest, blobs.c.size)
        .where(blobs.c.digest.in_(sorted(set(digests))), blobs.c.state == state)
        .order_by(blobs.c.digest)
        .with_for_update()
    )).all()
    return [BlobRow(row.digest, int(row.size)) for row in rows]


async def finish_deletions(engines: Engines, digests: Sequence[str], remove: Remove
                           ) -> tuple[list[BlobRow], int]:
    """Step 2: delete the bytes of rows still marked, then the rows, under their locks.

    A row an upload reclaimed meanwhile is live again and left alone. If this transaction
    dies after unlinking, the rows stay marked and the next run finishes them.
    """
    if not digests:
        return [], 0
    async with engines.begin_write() as connection:
        done = await lock_blobs(connection, digests, DELETING)
        if not done:
            return [], 0
        freed = await remove([row.digest for row in done])
        await connection.execute(
            delete(blobs).where(blobs.c.digest.in_([row.digest for row in done]),
                                blobs.c.state == DELETING)
        )
    return done, freed


class SQLGCStore(GCStore):
    """GCStore: each method one transaction or one read."""

    def __init__(self, engines: Engines) -> None:
        self._engines = engines

    async def garbage_blobs(self, cutoff: datetime, after: str | None,
                            limit: int) -> list[BlobRow]:
        referenced = exists().where(manifest_references.c.digest == blobs.c.digest)
        young_link = exists().where(
            repository_blobs.c.digest == blobs.c.digest, repository_blobs.c.created_at >= cutoff
        )
        query = (
            select(blobs.c.digest, blobs.c.size)
            .where(blobs.c.state == LIVE, ~referenced, ~young_link)
            .order_by(blobs.c.digest)
            .limit(limit)
        )
        if after is not None:
            query = query.where(blobs.c.digest > after)
        async with self._engines.read.connect() as connection:
            rows = (await connection.execute(query)).all()
        return [BlobRow(row.digest, int(row.size)) for row in rows]

    async def mark_blobs_deleting(self, digests: Sequence[str],
                                  cutoff: datetime) -> list[BlobRow]:
        """Step 1: under the blob rows' locks, unlink the still-garbage ones and mark them."""
        if not digests:
            return []
        async with self._engines.begin_write() as connection:
            rows = await lock_blobs(connection, digests, LIVE)
            locked = [row.digest for row in rows]
            if not locked:
                return []
            # Fresh statements: at READ COMMITTED they see whatever committed while we waited.
            kept = set((await connection.scalars(
                select(manifest_references.c.digest).distinct()
                .where(manifest_references.c.digest.in_(locked))
            )).all())
            kept |= set((await connection.scalars(
                select(repository_blobs.c.digest).distinct().where(
                    repository_blobs.c.digest.in_(locked),
                    repository_blobs.c.created_at >= cutoff,
                )
            )).all())
            doomed = [row for row in rows if row.digest not in kept]
            if doomed:
                names = [row.digest for row in doomed]
                await connection.execute(
                    delete(repository_blobs).where(repository_blobs.c.digest.in_(names))
                )
                await connection.execute(
                    update(blobs).where(blobs.c.digest.in_(names)).values(state=DELETING)
                )
        return doomed

    async def pending_deletions(self, limit: int) -> list[str]:
        async with self._engines.read.connect() as connection:
            return list((await connection.scalars(
                select(blobs.c.digest).where(blobs.c.state == DELETING)
                .order_by(blobs.c.digest).limit(limit)
            )).all())

    async def finish_deletions(self, digests: Sequence[str], remove: Remove
                               ) -> tuple[list[BlobRow], int]:
        """Step 2, shared with the integrity check's repair (see finish_deletions)."""
        return await finish_deletions(self._engines, digests, remove)

    async def blobs_freed_by(self, manifest_ids: Sequence[int],
                             cutoff: datetime) -> list[BlobRow]:
        doomed = set(manifest_ids)
        if not doomed:
            return []
        async with self._engines.read.connect() as connection:
            candidates: set[str] = set()
            for ids in in_chunks(sorted(doomed)):
                candidates |= set((await connection.scalars(
                    select(manifest_references.c.digest).distinct()
                    .where(manifest_references.c.manifest_id.in_(ids))
                )).all())
            freed: list[BlobRow] = []
            for digests in in_chunks(sorted(candidates)):
                users: dict[str, set[int]] = {}
                for row in (await connection.execute(
                    select(manifest_references.c.digest, manifest_references.c.manifest_id)
                    .where(manifest_references.c.digest.in_(digests))
                )).all():
                    users.setdefault(row.digest, set()).add(int(row.manifest_id))
                only_doomed = [d for d, users_of in users.items() if users_of <= doomed]
                if not only_doomed:
                    continue
                young = exists().where(repository_blobs.c.digest == blobs.c.digest,
                                       repository_blobs.c.created_at >= cutoff)
                rows = (await connection.execute(
                    select(blobs.c.digest, blobs.c.size)
                    .where(blobs.c.digest.in_(only_doomed), blobs.c.state == LIVE, ~young)
                )).all()
                freed += [BlobRow(row.digest, int(row.size)) for row in rows]
        return freed

    # -- GC: manifests -------------------------------------------------------------------------

    async def repositories(self) -> list[tuple[int, str]]:
        async with self._engines.read.connect() as connection:
            rows = (await connection.execute(
                select(repositories.c.id, repositories.c.name).order_by(repositories.c.name)
            )).all()
        return [(int(row.id), str(row.name)) for row in rows]

    async def manifest_graph(self, repository_id: int, name: str,
                             cutoff: datetime) -> RepositoryGraph:
        tagged = exists().where(tags.c.manifest_id == manifests.c.id)
        async with self._engines.read.connect() as connection:
            rows = (await connection.execute(
                select(manifests.c.id, manifests.c.digest, manifests.c.subject_digest,
                       manifests.c.size, tagged.label("tagged"),
                       (manifests.c.created_at >= cutoff).label("recent"))
                .where(manifests.c.repository_id == repository_id)
            )).all()
            edges = (await connection.execute(
                select(manifest_references.c.manifest_id, manifest_references.c.digest)
                .select_from(manifest_references.join(
                    manifests, manifests.c.id == manifest_references.c.manifest_id))
                .where(manifests.c.repository_id == repository_id,
                       manifest_references.c.kind.in_(CHILD_REFERENCES))
            )).all()
        nodes = [
            ManifestNode(int(row.id), row.digest, row.subject_digest, int(row.size),
                         bool(row.tagged), bool(row.recent))
            for row in rows
        ]
        children: dict[int, list[str]] = {}
        for edge in edges:
            children.setdefault(int(edge.manifest_id), []).append(edge.digest)
        return RepositoryGraph(repository_id, name, nodes, children)

    async def delete_unreachable_manifests(self, repository_id: int, ids: Sequence[int],
                                           cutoff: datetime) -> list[DeletedManifest]:
        """Delete, in the order given (parents first), those still untagged, old and unlisted.

        They are re-checked under their row locks, which a manifest PUT that tags one or lists
        it as a child also takes. A manifest listed by another is kept unless that parent is
        deleted earlier in this same batch.
        """
        if not ids:
            return []
        async with self._engines.begin_write() as connection:
            rows = {int(row.id): row for row in (await connection.execute(
                select(manifests.c.id, manifests.c.digest, manifests.c.size)
                .where(manifests.c.id.in_(list(ids)), manifests.c.repository_id == repository_id,
                       manifests.c.created_at < cutoff)
                .order_by(manifests.c.digest)  # the order a manifest PUT locks children in
                .with_for_update()
            )).all()}
            tagged = set((await connection.scalars(
                select(tags.c.manifest_id).distinct().where(tags.c.manifest_id.in_(list(rows)))
            )).all())
            parents = await listers_of(connection, repository_id,
                                       [row.digest for row in rows.values()])
            doomed: list[DeletedManifest] = []
            gone: set[int] = set()
            for manifest_id in ids:
                row = rows.get(manifest_id)
                if row is None or manifest_id in tagged:
                    continue
                if parents.get(row.digest, set()) - gone:
                    continue
                gone.add(manifest_id)
                doomed.append(DeletedManifest(manifest_id, row.digest, int(row.size)))
            if doomed:
                await delete_manifest_rows(connection, gone)
        return doomed
