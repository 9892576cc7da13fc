"""What the integrity check compares stored bytes with, and the unlinking its repair does."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import and_, delete, exists, false, func, select, update

from dockyard.metadata.batches import present
from dockyard.metadata.engine import Engines
from dockyard.metadata.gc import finish_deletions
from dockyard.metadata.interfaces import IntegrityStore, Remove
from dockyard.metadata.records import BlobRow, DanglingReference
from dockyard.metadata.schema import (
    BLOB_REFERENCE,
    DELETING,
    LIVE,
    MANIFEST_REFERENCE,
    blobs,
    manifest_references,
    manifests,
    repositories,
    repository_blobs,
)


class SQLIntegrityStore(IntegrityStore):
    """IntegrityStore: paged reads of the blob rows, and GC's steps for the repair."""

    def __init__(self, engines: Engines) -> None:
        self._engines = engines


    async def live_blobs(self, after: str | None, limit: int) -> list[BlobRow]:
        query = (select(blobs.c.digest, blobs.c.size).where(blobs.c.state == LIVE)
                 .order_by(blobs.c.digest).limit(limit))
        if after is not None:
            query = query.where(blobs.c.digest > after)
        async with self._engines.read.connect() as connection:
            rows = (await connection.execute(query)).all()
        return [BlobRow(row.digest, int(row.size)) for row in rows]

    async def is_live(self, digest: str) -> bool:
        async with self._engines.read.connect() as connection:
            state = await connection.scalar(select(blobs.c.state).where(blobs.c.digest == digest))
        return state == LIVE

    async def count_blobs(self) -> tuple[int, int]:
        async with self._engines.read.connect() as connection:
            row = (await connection.execute(
                select(func.count(), func.sum(blobs.c.size)).where(blobs.c.state == LIVE)
            )).one()
        return int(row[0]), int(row[1] or 0)

    async def known_blobs(self, digests: Sequence[str]) -> set[str]:
        return await present(self._engines.read, blobs.c.digest, digests)

    async def dangling_references(self, limit: int) -> list[DanglingReference]:
        parent = manifests.alias("parent")
        child = manifests.alias("child")
        holder = parent.join(repositories, repositories.c.id == parent.c.repository_id).join(
            manifest_references, manifest_references.c.manifest_id == parent.c.id)
        blob_held = exists().where(
            repository_blobs.c.repository_id == parent.c.repository_id,
            repository_blobs.c.digest == manifest_references.c.digest,
        )
        child_held = exists().where(child.c.repository_id == parent.c.repository_id,
                                    child.c.digest == manifest_references.c.digest)
        columns = (repositories.c.name, parent.c.digest.label("manifest"),
                   manifest_references.c.digest, manifest_references.c.kind)
        query = select(*columns).select_from(holder).where(
            # A cached manifest's blobs are fetched when a client asks: not yet held is fine.
            (and_(manifest_references.c.kind == BLOB_REFERENCE, ~blob_held,
                  parent.c.cached == false()))
            | (and_(manifest_references.c.kind == MANIFEST_REFERENCE, ~child_held))
        ).order_by(repositories.c.name, parent.c.digest).limit(limit)
        async with self._engines.read.connect() as connection:
            rows = (await connection.execute(query)).all()
        return [DanglingReference(row.name, row.manifest, row.digest, row.kind) for row in rows]

    async def drop_blob(self, digest: str) -> bool:
        async with self._engines.begin_write() as connection:
            found = await connection.scalar(
                select(blobs.c.digest).where(blobs.c.digest == digest, blobs.c.state == LIVE)
                .with_for_update()
            )
            if found is None:
                return False
            await connection.execute(
                delete(repository_blobs).where(repository_blobs.c.digest == digest)
            )
            await connection.execute(
                update(blobs).where(blobs.c.digest == digest).values(state=DELETING)
            )
        return True

    async def finish_deletions(self, digests: Sequence[str], remove: Remove
                               ) -> tuple[list[BlobRow], int]:
        """GC's step 2 (see dockyard.metadata.gc.finish_deletions)."""
        return await finish_deletions(self._engines, digests, remove)
