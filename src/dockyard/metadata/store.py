"""Queries and transactions over the schema, shared by SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any

from sqlalchemy import Row, bindparam, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from dockyard.metadata.clock import utc_now
from dockyard.metadata.engine import Engines
from dockyard.metadata.gc import SQLGCStore
from dockyard.metadata.integrity import SQLIntegrityStore
from dockyard.metadata.interfaces import MaintenanceStores, MetadataStore, PlaceBytes
from dockyard.metadata.leases import SQLLeaseStore
from dockyard.metadata.manifest_rows import delete_manifest_rows
from dockyard.metadata.mirror import SQLMirrorStore
from dockyard.metadata.outbox import append_events
from dockyard.metadata.purge import SQLUploadPurgeStore
from dockyard.metadata.records import (
    EventRow,
    ManifestRecord,
    ManifestWrite,
    MissingReferences,
    ReferrerRecord,
    UploadGone,
    UploadRecord,
)
from dockyard.metadata.schema import (
    BLOB_REFERENCE,
    LIVE,
    MANIFEST_REFERENCE,
    OPTIONAL_MANIFEST_REFERENCE,
    SUBJECT_REFERENCE,
    blobs,
    manifest_references,
    manifests,
    repositories,
    repository_blobs,
    tags,
    uploads,
)
from dockyard.metadata.settings import SQLSettingStore
from dockyard.metadata.upsert import Upsert
from dockyard.metadata.usage import SQLUsageStore


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

# The statements of a push, built once as well: building one cost more than running it.
_REPOSITORY_BY_NAME = select(repositories.c.id).where(repositories.c.name == bindparam("name"))
_ADD_REPOSITORY = Upsert(repositories, ["name"])
_ADD_BLOB = Upsert(blobs, ["digest"])
# A push or mount restarts the link's GC grace period: the manifest is on its way.
_LINK_BLOB = Upsert(repository_blobs, ["repository_id", "digest"], ["created_at"])
_MOVE_TAG = Upsert(tags, ["repository_id", "name"], ["manifest_id", "updated_at"])
_BLOB_STATE = select(blobs.c.state).where(blobs.c.digest == bindparam("digest")).with_for_update()
_REVIVE_BLOB = update(blobs).where(blobs.c.digest == bindparam("b_digest")).values(state=LIVE)
_SHARE_BLOBS = (
    select(blobs.c.digest).where(blobs.c.digest.in_(bindparam("digests", expanding=True)))
    .order_by(blobs.c.digest).with_for_update(read=True)
)
_LINKED_DIGESTS = select(repository_blobs.c.digest).where(
    repository_blobs.c.repository_id == bindparam("repository_id"),
    repository_blobs.c.digest.in_(bindparam("digests", expanding=True)),
)
_STORED_CHILDREN = (
    select(manifests.c.digest).where(
        manifests.c.repository_id == bindparam("repository_id"),
        manifests.c.digest.in_(bindparam("digests", expanding=True)),
    ).order_by(manifests.c.digest).with_for_update(read=True)
)
_MANIFEST_ID = select(manifests.c.id, manifests.c.cached).where(
    manifests.c.repository_id == bindparam("repository_id"),
    manifests.c.digest == bindparam("digest"),
).with_for_update(read=True)
_NOT_CACHED = update(manifests).where(manifests.c.id == bindparam("manifest_id")).values(
    cached=False)
_ADD_MANIFEST = Upsert(manifests, ["repository_id", "digest"], returning=["id"])
_INSERT_REFERENCES = insert(manifest_references)
_ADD_UPLOAD = Upsert(uploads, ["id"])
_DELETE_UPLOAD = delete(uploads).where(uploads.c.id == bindparam("upload_id"))
_UPLOAD_BY_ID = select(uploads).where(uploads.c.id == bindparam("upload_id"))
_TAG_PAGE = (
    select(tags.c.name)
    .where(tags.c.repository_id == bindparam("repository_id"))
    .order_by(tags.c.name).limit(bindparam("limit"))
)
_TAG_PAGE_AFTER = _TAG_PAGE.where(tags.c.name > bindparam("last"))
_REPOSITORY_PAGE = (
    select(repositories.c.name).order_by(repositories.c.name).limit(bindparam("limit"))
)
_REPOSITORY_PAGE_AFTER = _REPOSITORY_PAGE.where(repositories.c.name > bindparam("last"))


class SQLMetadataStore(MetadataStore):
    """MetadataStore on SQLite or PostgreSQL through SQLAlchemy Core."""

    def __init__(self, engines: Engines) -> None:
        self._engines = engines

    def maintenance(self) -> MaintenanceStores:
        """The maintenance services' stores on the same engines."""
        return MaintenanceStores(
            leases=SQLLeaseStore(self._engines), settings=SQLSettingStore(self._engines),
            gc=SQLGCStore(self._engines), usage=SQLUsageStore(self._engines),
            integrity=SQLIntegrityStore(self._engines), purge=SQLUploadPurgeStore(self._engines),
            mirror=SQLMirrorStore(self._engines),
        )

    async def close(self) -> None:
        """Dispose of the engines."""
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

    async def _hot_rows(self, query: Any, params: dict[str, Any]) -> Sequence[Row[Any]]:
        """A read of a prebuilt module-level query, answered from the memo where it can be."""
        memo = self._engines.read_memo
        if memo is None:
            return await self._rows(query, params)
        key = (id(query), *params.items())
        rows, version = memo.lookup(key)
        if rows is None:
            rows = await self._rows(query, params)
            memo.store(key, version, rows)
        return rows

    # -- repositories -------------------------------------------------------------------------

    async def _ensure_repository(self, connection: AsyncConnection, name: str) -> int:
        """The repository's id, creating the row on first use (one statement once it exists)."""
        found = await connection.scalar(_REPOSITORY_BY_NAME, {"name": name})
        if found is None:
            await connection.execute(_ADD_REPOSITORY.on(connection),
                                     {"name": name, "created_at": utc_now()})
            found = await connection.scalar(_REPOSITORY_BY_NAME, {"name": name})
        assert found is not None
        return int(found)

    async def repository_exists(self, name: str) -> bool:
        return bool(await self._hot_rows(_REPOSITORY_BY_NAME, {"name": name}))

    async def list_repositories(self, last: str | None, limit: int) -> list[str]:
        query = _REPOSITORY_PAGE if last is None else _REPOSITORY_PAGE_AFTER
        return [row[0] for row in await self._hot_rows(query, {"limit": limit, "last": last})]

    # -- blobs --------------------------------------------------------------------------------

    async def linked_blob_size(self, repository: str, digest: str) -> int | None:
        rows = await self._hot_rows(_LINKED_BLOB_SIZE, {"repository": repository, "digest": digest})
        size = rows[0][0] if rows else None
        return None if size is None else int(size)

    async def _link_blob(self, connection: AsyncConnection, repository: str, digest: str,
                         size: int) -> None:
        await connection.execute(_ADD_BLOB.on(connection),
                                 {"digest": digest, "size": size, "created_at": utc_now()})
        await self._link_claimed_blob(connection, repository, digest)

    async def _link_claimed_blob(self, connection: AsyncConnection, repository: str,
                                 digest: str) -> None:
        """Link a blob whose row this transaction already inserted or locked."""
        repository_id = await self._ensure_repository(connection, repository)
        await connection.execute(_LINK_BLOB.on(connection),
                                 {"repository_id": repository_id, "digest": digest,
                                  "created_at": utc_now()})

    async def mount_blob(self, repository: str, digest: str, source: str,
                         events: Sequence[EventRow] = ()) -> int | None:
        """Link a live blob `source` holds; its size, or None. Locks the blob row against GC."""
        async with self._engines.begin_write() as connection:
            size = await connection.scalar(
                select(blobs.c.size)
                .where(blobs.c.digest == digest, blobs.c.state == LIVE)
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
        now = utc_now()
        async with self._engines.begin_write() as connection:
            await connection.execute(_ADD_UPLOAD.on(connection), {
                "id": upload_id, "repository": repository, "created_at": now, "updated_at": now,
            })

    async def get_upload(self, upload_id: str) -> UploadRecord | None:
        rows = await self._rows(_UPLOAD_BY_ID, {"upload_id": upload_id})
        if not rows:
            return None
        row = rows[0]
        return UploadRecord(row.id, row.repository, row.created_at, row.updated_at)

    async def touch_upload(self, upload_id: str) -> None:
        async with self._engines.begin_write() as connection:
            await connection.execute(
                update(uploads).where(uploads.c.id == upload_id).values(updated_at=utc_now())
            )

    async def delete_upload(self, upload_id: str) -> bool:
        async with self._engines.begin_write() as connection:
            result = await connection.execute(_DELETE_UPLOAD, {"upload_id": upload_id})
        return bool(result.rowcount)

    async def complete_upload(self, upload_id: str, repository: str, digest: str,
                              size: int, place_bytes: PlaceBytes | None = None,
                              events: Sequence[EventRow] = (), has_row: bool = True) -> None:
        async with self._engines.begin_write() as connection:
            if has_row:
                result = await connection.execute(_DELETE_UPLOAD, {"upload_id": upload_id})
                if not result.rowcount:
                    raise UploadGone(upload_id)
            await self._claim_blob(connection, digest, size)
            if place_bytes is not None:
                await place_bytes()
            await self._link_claimed_blob(connection, repository, digest)
            await append_events(connection, events)

    async def _claim_blob(self, connection: AsyncConnection, digest: str, size: int) -> None:
        """Insert the blob row or take back one GC marked, holding its lock to commit."""
        while True:
            await connection.execute(_ADD_BLOB.on(connection), {
                "digest": digest, "size": size, "created_at": utc_now(), "state": LIVE,
            })
            state = await connection.scalar(_BLOB_STATE, {"digest": digest})
            if state is None:
                continue  # PostgreSQL: a GC transaction we waited for deleted the row
            if state != LIVE:
                await connection.execute(_REVIVE_BLOB, {"b_digest": digest})
            return

    # -- manifests ----------------------------------------------------------------------------

    async def get_manifest(self, repository: str, digest: str) -> ManifestRecord | None:
        return await self._fetch_manifest(
            _MANIFEST_BY_DIGEST, {"repository": repository, "digest": digest}
        )

    async def resolve_tag(self, repository: str, tag: str) -> ManifestRecord | None:
        return await self._fetch_manifest(_MANIFEST_BY_TAG, {"repository": repository, "tag": tag})

    async def _fetch_manifest(self, query: Any, params: dict[str, Any]) -> ManifestRecord | None:
        rows = await self._hot_rows(query, params)
        if not rows:
            return None
        row = rows[0]
        return ManifestRecord(row.digest, row.media_type, bytes(row.content))

    async def _missing(self, connection: AsyncConnection, present_query: Any,
                       repository_id: int, wanted: Sequence[str],
                       optional: Sequence[str] = ()) -> list[str]:
        """Those of `wanted` the repository lacks; `present_query` locks what it finds of
        `optional` too, so that what the manifest names stays while the PUT commits."""
        if not wanted and not optional:
            return []
        found = await connection.scalars(present_query, {
            "repository_id": repository_id, "digests": sorted({*wanted, *optional})})
        present = set(found.all())
        return [digest for digest in dict.fromkeys(wanted) if digest not in present]

    async def put_manifest(self, repository: str, write: ManifestWrite,
                           events: Sequence[EventRow] = ()) -> None:
        stored = write if write.references_required else _cached(write)

        async def transaction(connection: AsyncConnection) -> None:
            repository_id = await self._ensure_repository(connection, repository)
            await self._share_blob_rows(connection, stored.blob_digests)
            missing = MissingReferences(
                blobs=await self._missing(
                    connection, _LINKED_DIGESTS, repository_id, stored.blob_digests)
                if write.references_required else [],
                manifests=await self._missing(
                    connection, _STORED_CHILDREN, repository_id, stored.child_digests,
                    stored.optional_child_digests),
            )
            if missing.blobs or missing.manifests:
                raise missing
            manifest_id = await self._insert_manifest(connection, repository_id, stored)
            await self._move_tags(connection, repository_id, manifest_id, write.tags)
            await append_events(connection, events)

        await self._engines.run_write(transaction)

    async def _share_blob_rows(self, connection: AsyncConnection,
                               digests: Sequence[str]) -> None:
        """FOR SHARE on the blob rows, so GC's unlinking waits for this PUT or precedes it.

        SQLite has no row locks (the statement would be a plain SELECT): there, writers run
        one at a time, which gives the same order.
        """
        if digests and connection.dialect.name != "sqlite":
            await connection.execute(_SHARE_BLOBS, {"digests": sorted(set(digests))})

    async def _insert_manifest(self, connection: AsyncConnection, repository_id: int,
                               write: ManifestWrite) -> int:
        """The manifest's id, inserting it with its references unless it is stored already.

        Inserting first spares a lookup in the usual push of a new manifest; a manifest
        pushed again is then looked up, under a shared lock against its deletion.
        """
        row = {
            "repository_id": repository_id,
            "digest": write.digest,
            "media_type": write.media_type,
            "artifact_type": write.artifact_type,
            "size": len(write.content),
            "content": write.content,
            "subject_digest": write.subject_digest,
            "annotations": write.annotations,
            "created_at": utc_now(),
            "cached": not write.references_required,
        }
        while (inserted := (await connection.execute(_ADD_MANIFEST.on(connection), row)
                            ).scalar()) is None:
            existing = (await connection.execute(
                _MANIFEST_ID, {"repository_id": repository_id, "digest": write.digest})).first()
            if existing is not None:
                if existing.cached and write.references_required:
                    # Pushed whole over a cached copy: every reference is held now.
                    await connection.execute(_NOT_CACHED, {"manifest_id": existing.id})
                return int(existing.id)
            # PostgreSQL: a DELETE we waited for removed it; insert it after all
        manifest_id = int(inserted)
        references = _reference_rows(manifest_id, write)
        if references:
            await connection.execute(_INSERT_REFERENCES, references)
        return manifest_id

    async def _move_tags(self, connection: AsyncConnection, repository_id: int,
                         manifest_id: int, names: Iterable[str]) -> None:
        for name in dict.fromkeys(names):
            await connection.execute(_MOVE_TAG.on(connection), {
                "repository_id": repository_id, "name": name, "manifest_id": manifest_id,
                "updated_at": utc_now(),
            })

    async def delete_manifest(self, repository: str, digest: str,
                              remove_referrers: bool = False,
                              events: Sequence[EventRow] = ()) -> bool:
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
            await delete_manifest_rows(connection, doomed)
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
        found = await self._hot_rows(_REPOSITORY_BY_NAME, {"name": repository})
        if not found:
            return None
        params = {"repository_id": found[0][0], "limit": limit, "last": last}
        rows = await self._hot_rows(_TAG_PAGE if last is None else _TAG_PAGE_AFTER, params)
        return [row[0] for row in rows]

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


def _cached(write: ManifestWrite) -> ManifestWrite:
    """A mirror's write: every child optional, as in a sparse index (see ManifestWrite)."""
    return replace(write, child_digests=(),
                   optional_child_digests=(*write.child_digests, *write.optional_child_digests))


def _reference_rows(manifest_id: int, write: ManifestWrite) -> list[dict[str, Any]]:
    rows = {(digest, BLOB_REFERENCE) for digest in write.blob_digests}
    rows |= {(digest, MANIFEST_REFERENCE) for digest in write.child_digests}
    rows |= {(digest, OPTIONAL_MANIFEST_REFERENCE) for digest in write.optional_child_digests}
    if write.subject_digest is not None:
        rows.add((write.subject_digest, SUBJECT_REFERENCE))
    return [
        {"manifest_id": manifest_id, "digest": digest, "kind": kind} for digest, kind in rows
    ]


__all__ = ["SQLMetadataStore"]
