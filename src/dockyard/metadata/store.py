"""Queries and transactions over the schema, shared by SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Row, Table, bindparam, delete, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from dockyard.metadata.engine import Engines
from dockyard.metadata.lifecycle import LifecycleStore
from dockyard.metadata.outbox import EventRow, append_events
from dockyard.metadata.records import (
    ManifestRecord,
    ManifestWrite,
    MissingReferences,
    ReferrerRecord,
    UploadGone,
    UploadRecord,
)
from dockyard.metadata.schema import (
    blobs,
    manifest_references,
    manifests,
    repositories,
    repository_blobs,
    tags,
    uploads,
)

BLOB_REFERENCE = "blob"
MANIFEST_REFERENCE = "manifest"
LIVE_BLOB = "live"
"""blobs.state of a blob whose bytes are stored; GC's protocol is in registry/gc.py."""

PlaceBytes = Callable[[], Awaitable[None]]


def _now() -> datetime:
    return datetime.now(UTC)


def _upsert_insert(connection: AsyncConnection, table: Table) -> Any:
    """An INSERT that can take ON CONFLICT clauses on either engine."""
    if connection.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def _repository_id(name: Any) -> Any:
    return select(repositories.c.id).where(repositories.c.name == name).scalar_subquery()


# The hot reads, built once: a pull is a tag lookup, a manifest lookup and blob checks.
_REPOSITORY_ID = _repository_id(bindparam("repository"))
_MANIFEST_COLUMNS = (manifests.c.digest, manifests.c.media_type, manifests.c.content)
_MANIFEST_BY_DIGEST = select(*_MANIFEST_COLUMNS).where(
    manifests.c.repository_id == _REPOSITORY_ID, manifests.c.digest == bindparam("digest")
)
_MANIFEST_BY_TAG = (
    select(*_MANIFEST_COLUMNS)
    .select_from(tags.join(manifests, tags.c.manifest_id == manifests.c.id))
    .where(tags.c.repository_id == _REPOSITORY_ID, tags.c.name == bindparam("tag"))
)
_LINKED_BLOB_SIZE = (
    select(blobs.c.size)
    .select_from(repository_blobs.join(blobs, repository_blobs.c.digest == blobs.c.digest))
    .where(
        repository_blobs.c.repository_id == _REPOSITORY_ID,
        repository_blobs.c.digest == bindparam("digest"),
    )
)


class MetadataStore:
    def __init__(self, engines: Engines) -> None:
        self._engines = engines

    @property
    def engines(self) -> Engines:
        return self._engines

    def lifecycle(self) -> LifecycleStore:
        """The GC/maintenance queries on the same engines (a cache, if any, sees their writes)."""
        return LifecycleStore(self._engines)

    async def close(self) -> None:
        await self._engines.dispose()

    async def _rows(self, query: Any, params: dict[str, Any] | None = None
                    ) -> Sequence[Row[Any]]:
        """Run a read: inline on SQLite (see Engines.inline_read), else through the pool."""
        inline = self._engines.inline_read
        if inline is not None:
            with inline.connect() as sync_connection:
                return sync_connection.execute(query, params).all()
        async with self._engines.read.connect() as connection:
            return (await connection.execute(query, params)).all()

    async def _scalar(self, query: Any, params: dict[str, Any] | None = None) -> Any:
        rows = await self._rows(query, params)
        return rows[0][0] if rows else None

    # -- repositories -------------------------------------------------------------------------

    async def _ensure_repository(self, connection: AsyncConnection, name: str) -> int:
        """The repository's id, creating the row on first use (one statement once it exists)."""
        lookup = select(repositories.c.id).where(repositories.c.name == name)
        found = await connection.scalar(lookup)
        if found is None:
            statement = _upsert_insert(connection, repositories).values(
                name=name, created_at=_now())
            await connection.execute(statement.on_conflict_do_nothing(index_elements=["name"]))
            found = await connection.scalar(lookup)
        assert found is not None
        return int(found)

    async def repository_exists(self, name: str) -> bool:
        found = await self._scalar(select(repositories.c.id).where(repositories.c.name == name))
        return found is not None

    async def list_repositories(self, last: str | None, limit: int) -> list[str]:
        query = select(repositories.c.name).order_by(repositories.c.name).limit(limit)
        if last is not None:
            query = query.where(repositories.c.name > last)
        return [row[0] for row in await self._rows(query)]

    # -- blobs --------------------------------------------------------------------------------

    async def linked_blob_size(self, repository: str, digest: str) -> int | None:
        size = await self._scalar(_LINKED_BLOB_SIZE, {"repository": repository, "digest": digest})
        return None if size is None else int(size)

    async def _link_blob(self, connection: AsyncConnection, repository: str, digest: str,
                         size: int) -> None:
        repository_id = await self._ensure_repository(connection, repository)
        now = _now()
        await connection.execute(
            _upsert_insert(connection, blobs)
            .values(digest=digest, size=size, created_at=now)
            .on_conflict_do_nothing(index_elements=["digest"])
        )
        # A push or mount restarts the link's GC grace period: the manifest is on its way.
        await connection.execute(
            _upsert_insert(connection, repository_blobs)
            .values(repository_id=repository_id, digest=digest, created_at=now)
            .on_conflict_do_update(index_elements=["repository_id", "digest"],
                                   set_={"created_at": now})
        )

    async def link_blob(self, repository: str, digest: str, size: int) -> None:
        async with self._engines.begin_write() as connection:
            await self._link_blob(connection, repository, digest, size)

    async def mount_blob(self, repository: str, digest: str, source: str,
                         events: Sequence[EventRow] = ()) -> int | None:
        """Link a live blob `source` holds; its size, or None. Locks the blob row against GC."""
        async with self._engines.begin_write() as connection:
            size = await connection.scalar(
                select(blobs.c.size)
                .where(blobs.c.digest == digest, blobs.c.state == LIVE_BLOB)
                .with_for_update(read=True)
            )
            if size is None:
                return None
            held = await connection.scalar(
                select(repository_blobs.c.digest)
                .where(repository_blobs.c.repository_id == _repository_id(source))
                .where(repository_blobs.c.digest == digest)
            )
            if held is None:
                return None
            await self._link_blob(connection, repository, digest, int(size))
            await append_events(connection, events)
        return int(size)

    async def unlink_blob(self, repository: str, digest: str,
                          events: Sequence[EventRow] = ()) -> bool:
        async with self._engines.begin_write() as connection:
            result = await connection.execute(
                delete(repository_blobs)
                .where(repository_blobs.c.repository_id == _repository_id(repository))
                .where(repository_blobs.c.digest == digest)
            )
            if result.rowcount:
                await append_events(connection, events)
        return bool(result.rowcount)

    # -- uploads ------------------------------------------------------------------------------

    async def create_upload(self, upload_id: str, repository: str) -> None:
        now = _now()
        async with self._engines.begin_write() as connection:
            await connection.execute(
                insert(uploads).values(
                    id=upload_id, repository=repository, created_at=now, updated_at=now
                )
            )

    async def get_upload(self, upload_id: str) -> UploadRecord | None:
        rows = await self._rows(select(uploads).where(uploads.c.id == upload_id))
        if not rows:
            return None
        row = rows[0]
        return UploadRecord(row.id, row.repository, row.created_at, row.updated_at)

    async def touch_upload(self, upload_id: str) -> None:
        async with self._engines.begin_write() as connection:
            await connection.execute(
                update(uploads).where(uploads.c.id == upload_id).values(updated_at=_now())
            )

    async def delete_upload(self, upload_id: str) -> bool:
        async with self._engines.begin_write() as connection:
            result = await connection.execute(delete(uploads).where(uploads.c.id == upload_id))
        return bool(result.rowcount)

    async def complete_upload(self, upload_id: str, repository: str, digest: str,
                              size: int, place_bytes: PlaceBytes | None = None,
                              events: Sequence[EventRow] = ()) -> None:
        """End the session and link the blob it produced, together.

        The blob row is locked and live before `place_bytes` runs, so GC cannot delete the
        bytes that call makes sure are stored (registry/gc.py). UploadGone if the session was
        cancelled or purged meanwhile.
        """
        async with self._engines.begin_write() as connection:
            result = await connection.execute(delete(uploads).where(uploads.c.id == upload_id))
            if not result.rowcount:
                raise UploadGone(upload_id)
            await self._claim_blob(connection, digest, size)
            if place_bytes is not None:
                await place_bytes()
            await self._link_blob(connection, repository, digest, size)
            await append_events(connection, events)

    async def _claim_blob(self, connection: AsyncConnection, digest: str, size: int) -> None:
        """Insert the blob row or take back one GC marked, holding its lock to commit."""
        while True:
            await connection.execute(
                _upsert_insert(connection, blobs)
                .values(digest=digest, size=size, created_at=_now(), state=LIVE_BLOB)
                .on_conflict_do_nothing(index_elements=["digest"])
            )
            state = await connection.scalar(
                select(blobs.c.state).where(blobs.c.digest == digest).with_for_update()
            )
            if state is None:
                continue  # PostgreSQL: a GC transaction we waited for deleted the row
            if state != LIVE_BLOB:
                await connection.execute(
                    update(blobs).where(blobs.c.digest == digest).values(state=LIVE_BLOB)
                )
            return

    # -- manifests ----------------------------------------------------------------------------

    async def get_manifest(self, repository: str, digest: str) -> ManifestRecord | None:
        return await self._fetch_manifest(
            _MANIFEST_BY_DIGEST, {"repository": repository, "digest": digest}
        )

    async def resolve_tag(self, repository: str, tag: str) -> ManifestRecord | None:
        return await self._fetch_manifest(_MANIFEST_BY_TAG, {"repository": repository, "tag": tag})

    async def _fetch_manifest(self, query: Any, params: dict[str, Any]) -> ManifestRecord | None:
        rows = await self._rows(query, params)
        if not rows:
            return None
        row = rows[0]
        return ManifestRecord(row.digest, row.media_type, bytes(row.content))

    async def _missing(self, connection: AsyncConnection, column: Any, scope: Any,
                       repository_id: int, wanted: Sequence[str], lock: bool = False
                       ) -> list[str]:
        if not wanted:
            return []
        query = select(column).where(scope == repository_id, column.in_(set(wanted)))
        if lock:
            query = query.order_by(column).with_for_update(read=True)
        present = set((await connection.scalars(query)).all())
        return [digest for digest in dict.fromkeys(wanted) if digest not in present]

    async def put_manifest(self, repository: str, write: ManifestWrite,
                           events: Sequence[EventRow] = ()) -> None:
        """Store a manifest, its references and its tags, or nothing (MissingReferences)."""
        async with self._engines.begin_write() as connection:
            repository_id = await self._ensure_repository(connection, repository)
            await self._share_blob_rows(connection, write.blob_digests)
            missing = MissingReferences(
                blobs=await self._missing(
                    connection, repository_blobs.c.digest, repository_blobs.c.repository_id,
                    repository_id, write.blob_digests,
                ),
                manifests=await self._missing(
                    connection, manifests.c.digest, manifests.c.repository_id,
                    repository_id, write.child_digests, lock=True,
                ),
            )
            if missing.blobs or missing.manifests:
                raise missing
            manifest_id = await self._insert_manifest(connection, repository_id, write)
            await self._move_tags(connection, repository_id, manifest_id, write.tags)
            await append_events(connection, events)

    async def _share_blob_rows(self, connection: AsyncConnection,
                               digests: Sequence[str]) -> None:
        """FOR SHARE on the blob rows, so GC's unlinking waits for this PUT or precedes it.

        SQLite has no row locks (the statement would be a plain SELECT): there, writers run
        one at a time, which gives the same order.
        """
        if digests and connection.dialect.name != "sqlite":
            await connection.execute(
                select(blobs.c.digest).where(blobs.c.digest.in_(sorted(set(digests))))
                .order_by(blobs.c.digest).with_for_update(read=True)
            )

    async def _insert_manifest(self, connection: AsyncConnection, repository_id: int,
                               write: ManifestWrite) -> int:
        existing = await connection.scalar(
            select(manifests.c.id).where(
                manifests.c.repository_id == repository_id, manifests.c.digest == write.digest
            ).with_for_update(read=True)
        )
        if existing is not None:
            return int(existing)
        result = await connection.execute(
            insert(manifests)
            .values(
                repository_id=repository_id,
                digest=write.digest,
                media_type=write.media_type,
                artifact_type=write.artifact_type,
                size=len(write.content),
                content=write.content,
                subject_digest=write.subject_digest,
                annotations=write.annotations,
                created_at=_now(),
            )
            .returning(manifests.c.id)
        )
        manifest_id = int(result.scalar_one())
        references = _reference_rows(manifest_id, write)
        if references:
            await connection.execute(insert(manifest_references), references)
        return manifest_id

    async def _move_tags(self, connection: AsyncConnection, repository_id: int,
                         manifest_id: int, names: Iterable[str]) -> None:
        for name in dict.fromkeys(names):
            statement = _upsert_insert(connection, tags).values(
                repository_id=repository_id, name=name, manifest_id=manifest_id,
                updated_at=_now(),
            )
            await connection.execute(
                statement.on_conflict_do_update(
                    index_elements=["repository_id", "name"],
                    set_={"manifest_id": manifest_id, "updated_at": statement.excluded.updated_at},
                )
            )

    async def delete_manifest(self, repository: str, digest: str,
                              remove_referrers: bool = False,
                              events: Sequence[EventRow] = ()) -> bool:
        """Remove a manifest with its tags and references; with `remove_referrers`, also the
        manifests whose subject it is, and theirs, recursively. Children of an index stay."""
        async with self._engines.begin_write() as connection:
            row = (await connection.execute(
                select(manifests.c.id, manifests.c.repository_id).where(
                    manifests.c.repository_id == _repository_id(repository),
                    manifests.c.digest == digest,
                ).with_for_update()
            )).first()
            if row is None:
                return False
            doomed = [int(row.id)]
            if remove_referrers:
                doomed += await self._referrers_of(connection, int(row.repository_id), digest)
            for manifest_id in doomed:
                await connection.execute(delete(tags).where(tags.c.manifest_id == manifest_id))
                await connection.execute(
                    delete(manifest_references)
                    .where(manifest_references.c.manifest_id == manifest_id)
                )
                await connection.execute(delete(manifests).where(manifests.c.id == manifest_id))
            await append_events(connection, events)
        return True

    async def _referrers_of(self, connection: AsyncConnection, repository_id: int,
                            subject: str) -> list[int]:
        found: dict[int, str] = {}
        frontier = [subject]
        while frontier:
            rows = (await connection.execute(
                select(manifests.c.id, manifests.c.digest).where(
                    manifests.c.repository_id == repository_id,
                    manifests.c.subject_digest.in_(frontier),
                ).order_by(manifests.c.digest).with_for_update()
            )).all()
            fresh = {int(r.id): r.digest for r in rows if int(r.id) not in found}
            found.update(fresh)
            frontier = list(fresh.values())
        return list(found)

    async def delete_tag(self, repository: str, tag: str,
                         events: Sequence[EventRow] = ()) -> bool:
        async with self._engines.begin_write() as connection:
            result = await connection.execute(
                delete(tags).where(
                    tags.c.repository_id == _repository_id(repository), tags.c.name == tag
                )
            )
            if result.rowcount:
                await append_events(connection, events)
        return bool(result.rowcount)

    async def list_tags(self, repository: str, last: str | None, limit: int) -> list[str] | None:
        """Tag names after `last`, sorted; None when the repository does not exist."""
        repository_id = await self._scalar(
            select(repositories.c.id).where(repositories.c.name == repository)
        )
        if repository_id is None:
            return None
        query = (
            select(tags.c.name)
            .where(tags.c.repository_id == repository_id)
            .order_by(tags.c.name)
            .limit(limit)
        )
        if last is not None:
            query = query.where(tags.c.name > last)
        return [row[0] for row in await self._rows(query)]

    async def list_referrers(self, repository: str, subject: str, artifact_type: str | None,
                             last: str | None, limit: int) -> list[ReferrerRecord]:
        query = (
            select(
                manifests.c.digest, manifests.c.media_type, manifests.c.size,
                manifests.c.artifact_type, manifests.c.annotations,
            )
            .where(
                manifests.c.repository_id == _repository_id(repository),
                manifests.c.subject_digest == subject,
            )
            .order_by(manifests.c.digest)
            .limit(limit)
        )
        if artifact_type is not None:
            query = query.where(manifests.c.artifact_type == artifact_type)
        if last is not None:
            query = query.where(manifests.c.digest > last)
        rows = await self._rows(query)
        return [
            ReferrerRecord(row.digest, row.media_type, int(row.size), row.artifact_type,
                           row.annotations)
            for row in rows
        ]


def _reference_rows(manifest_id: int, write: ManifestWrite) -> list[dict[str, Any]]:
    rows = {(digest, BLOB_REFERENCE) for digest in write.blob_digests}
    rows |= {(digest, MANIFEST_REFERENCE) for digest in write.child_digests}
    if write.subject_digest is not None:
        rows.add((write.subject_digest, "subject"))
    return [
        {"manifest_id": manifest_id, "digest": digest, "kind": kind} for digest, kind in rows
    ]


__all__ = ["MetadataStore"]
