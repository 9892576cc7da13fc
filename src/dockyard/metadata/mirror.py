"""A mirror's bookkeeping in SQL: tag revalidation times, pull times, and eviction.

Eviction deletes manifest rows the way every other remover does (manifest_rows.py) and only
unlinks blobs, under their row locks as GC's step 1 takes them, so the bytes are left to the
GC protocol (registry/gc.py): a manifest PUT naming such a blob either commits first and is
seen here, or waits and finds the link gone.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, delete, exists, func, or_, select, true
from sqlalchemy.ext.asyncio import AsyncConnection

from dockyard.metadata.batches import in_chunks
from dockyard.metadata.clock import utc_now
from dockyard.metadata.engine import Engines
from dockyard.metadata.gc import lock_blobs
from dockyard.metadata.interfaces import MirrorStore
from dockyard.metadata.manifest_rows import delete_manifest_rows, listers_of
from dockyard.metadata.records import CachedImage
from dockyard.metadata.schema import (
    BLOB_REFERENCE,
    CHILD_REFERENCES,
    LIVE,
    blobs,
    manifest_references,
    manifests,
    mirror_pulls,
    mirror_tag_checks,
    repositories,
    repository_blobs,
    tags,
)
from dockyard.metadata.upsert import Upsert

_CHECK_TAG = Upsert(mirror_tag_checks, ["repository", "tag"], ["checked_at"])
_TAG_CHECKED_AT = select(mirror_tag_checks.c.checked_at).where(
    mirror_tag_checks.c.repository == bindparam("repository"),
    mirror_tag_checks.c.tag == bindparam("tag"),
)
_PULL = Upsert(mirror_pulls, ["manifest_id"], ["pulled_at"])
_PULLED_MANIFESTS = select(manifests.c.id, bindparam("at", type_=mirror_pulls.c.pulled_at.type)
                           ).where(
    manifests.c.repository_id == select(repositories.c.id).where(
        repositories.c.name == bindparam("repository")).scalar_subquery(),
    manifests.c.digest.in_(bindparam("digests", expanding=True)),
)
_LAST_USED = func.coalesce(mirror_pulls.c.pulled_at, manifests.c.created_at)


def _utc(at: datetime | None) -> datetime:
    """Aware UTC: SQLite stores the wall time without its zone, so every stamp is in one."""
    if at is None:
        return utc_now()
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def _read_utc(at: datetime | None) -> datetime | None:
    """A stored stamp as aware UTC (SQLite hands back naive UTC)."""
    return None if at is None else _utc(at)


def under(prefix: str) -> Any:
    """Repositories named `prefix` or `prefix/...`; every repository for ""."""
    prefix = prefix.rstrip("/")
    if not prefix:
        return true()
    pattern = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "/%"
    return or_(repositories.c.name == prefix,
               repositories.c.name.like(pattern, escape="\\"))


async def _children(connection: AsyncConnection, repository_id: int,
                    parents: Sequence[int]) -> dict[int, tuple[int, str]]:
    """Manifests of the repository that `parents` list: id to (parent id, digest)."""
    found: dict[int, tuple[int, str]] = {}
    for chunk in in_chunks(sorted(parents)):
        for row in (await connection.execute(
            select(manifests.c.id, manifests.c.digest, manifest_references.c.manifest_id)
            .select_from(manifest_references.join(
                manifests, manifests.c.digest == manifest_references.c.digest))
            .where(manifest_references.c.manifest_id.in_(chunk),
                   manifest_references.c.kind.in_(CHILD_REFERENCES),
                   manifests.c.repository_id == repository_id)
        )).all():
            found.setdefault(int(row.id), (int(row.manifest_id), row.digest))
    return found


async def _doomed(connection: AsyncConnection, repository_id: int, root: int) -> set[int]:
    """The root and, level by level, the children only doomed manifests list."""
    doomed = {root}
    frontier = [root]
    while frontier:
        children = {child: digest for child, (_, digest) in
                    (await _children(connection, repository_id, frontier)).items()
                    if child not in doomed}
        listers = await listers_of(connection, repository_id, list(children.values()))
        changed = True
        while changed:  # a child some kept manifest lists stays, and so do the ones it lists
            changed = False
            for child, digest in list(children.items()):
                if listers.get(digest, set()) - doomed - set(children):
                    del children[child]
                    changed = True
        doomed |= set(children)
        frontier = list(children)
    return doomed


async def _blob_references(connection: AsyncConnection, ids: Sequence[int]) -> list[str]:
    """The blobs these manifests name."""
    found: set[str] = set()
    for chunk in in_chunks(sorted(ids)):
        found |= set((await connection.scalars(
            select(manifest_references.c.digest).distinct()
            .where(manifest_references.c.manifest_id.in_(chunk),
                   manifest_references.c.kind == BLOB_REFERENCE)
        )).all())
    return sorted(found)


class SQLMirrorStore(MirrorStore):
    """MirrorStore over the manifest, link and mirror tables."""

    def __init__(self, engines: Engines) -> None:
        self._engines = engines

    async def tag_checked_at(self, repository: str, tag: str) -> datetime | None:
        async with self._engines.read.connect() as connection:
            checked = await connection.scalar(
                _TAG_CHECKED_AT, {"repository": repository, "tag": tag})
        return _read_utc(checked)

    async def mark_tag_checked(self, repository: str, tag: str,
                               at: datetime | None = None) -> None:
        async with self._engines.begin_write() as connection:
            await connection.execute(_CHECK_TAG.on(connection), {
                "repository": repository, "tag": tag, "checked_at": _utc(at)})

    async def mark_pulled(self, repository: str, digests: Sequence[str],
                          at: datetime | None = None) -> None:
        wanted = sorted(set(digests))
        if not wanted:
            return
        async with self._engines.begin_write() as connection:
            statement = _PULL.on(connection).from_select(
                [mirror_pulls.c.manifest_id, mirror_pulls.c.pulled_at], _PULLED_MANIFESTS)
            await connection.execute(statement, {
                "repository": repository, "digests": wanted, "at": _utc(at)})

    async def eviction_candidates(self, prefix: str, pulled_before: datetime | None,
                                  limit: int) -> list[CachedImage]:
        parent = manifests.alias("parent")
        listed = exists().where(
            manifest_references.c.digest == manifests.c.digest,
            manifest_references.c.kind.in_(CHILD_REFERENCES),
            manifest_references.c.manifest_id == parent.c.id,
            parent.c.repository_id == manifests.c.repository_id,
        )
        query = (
            select(repositories.c.name, manifests.c.id, manifests.c.repository_id,
                   manifests.c.digest, mirror_pulls.c.pulled_at)
            .select_from(manifests.join(repositories,
                                        repositories.c.id == manifests.c.repository_id)
                         .outerjoin(mirror_pulls, mirror_pulls.c.manifest_id == manifests.c.id))
            .where(manifests.c.cached == true(), under(prefix), ~listed)
            .order_by(_LAST_USED, repositories.c.name, manifests.c.digest)
            .limit(limit)
        )
        if pulled_before is not None:
            query = query.where(_utc(pulled_before) > _LAST_USED)
        async with self._engines.read.connect() as connection:
            rows = (await connection.execute(query)).all()
            sizes = [await _image_size(connection, int(row.repository_id), int(row.id))
                     for row in rows]
        return [CachedImage(row.name, row.digest, _read_utc(row.pulled_at), size)
                for row, size in zip(rows, sizes, strict=True)]

    async def cached_bytes(self, prefix: str) -> int:
        linked = (select(repository_blobs.c.digest)
                  .where(repository_blobs.c.repository_id.in_(
                      select(repositories.c.id).where(under(prefix)))))
        async with self._engines.read.connect() as connection:
            blob_bytes = await connection.scalar(
                select(func.sum(blobs.c.size)).where(blobs.c.digest.in_(linked)))
            manifest_bytes = await connection.scalar(
                select(func.sum(manifests.c.size)).select_from(manifests.join(
                    repositories, repositories.c.id == manifests.c.repository_id))
                .where(under(prefix)))
        return int(blob_bytes or 0) + int(manifest_bytes or 0)

    async def evict(self, repository: str, digest: str) -> bool:
        async with self._engines.begin_write() as connection:
            found = (await connection.execute(
                select(manifests.c.id, manifests.c.repository_id)
                .select_from(manifests.join(
                    repositories, repositories.c.id == manifests.c.repository_id))
                .where(repositories.c.name == repository, manifests.c.digest == digest)
            )).first()
            if found is None:
                return False
            repository_id, root = int(found.repository_id), int(found.id)
            doomed = await _doomed(connection, repository_id, root)
            candidates = await _blob_references(connection, sorted(doomed))
            # Blob rows first, then manifest rows: the order a manifest PUT locks them in.
            await lock_blobs(connection, candidates, LIVE)
            locked = set((await connection.scalars(
                select(manifests.c.id).where(manifests.c.id.in_(sorted(doomed)))
                .order_by(manifests.c.digest).with_for_update()
            )).all())
            if root not in locked:
                return False  # deleted while we waited
            # Fresh reads: a manifest listing a child may have committed while we waited.
            doomed = await _doomed(connection, repository_id, root) & locked
            names = list((await connection.scalars(
                select(tags.c.name).where(tags.c.manifest_id.in_(sorted(doomed)))
            )).all())
            await delete_manifest_rows(connection, doomed)
            for chunk in in_chunks(sorted(names)):
                await connection.execute(delete(mirror_tag_checks).where(
                    mirror_tag_checks.c.repository == repository,
                    mirror_tag_checks.c.tag.in_(chunk)))
            await _unlink_unreferenced(connection, repository_id, candidates)
        return True


async def _unlink_unreferenced(connection: AsyncConnection, repository_id: int,
                               digests: Sequence[str]) -> None:
    """Unlink from the repository those of `digests` none of its manifests references."""
    still_named = exists().where(
        manifest_references.c.digest == repository_blobs.c.digest,
        manifest_references.c.manifest_id == manifests.c.id,
        manifests.c.repository_id == repository_id,
    )
    for chunk in in_chunks(list(digests)):
        await connection.execute(delete(repository_blobs).where(
            repository_blobs.c.repository_id == repository_id,
            repository_blobs.c.digest.in_(chunk), ~still_named))


async def _image_size(connection: AsyncConnection, repository_id: int, root: int) -> int:
    """The manifest's bytes, its children's (any depth), and the blobs they name that the
    repository holds, each blob once."""
    ids = {root}
    frontier = [root]
    while frontier:
        frontier = [child for child in await _children(connection, repository_id, frontier)
                    if child not in ids]
        ids |= set(frontier)
    total = 0
    for chunk in in_chunks(sorted(ids)):
        total += int(await connection.scalar(
            select(func.sum(manifests.c.size)).where(manifests.c.id.in_(chunk))) or 0)
    held: dict[str, int] = {}
    for chunk in in_chunks(sorted(ids)):
        for row in (await connection.execute(
            select(blobs.c.digest, blobs.c.size)
            .select_from(manifest_references.join(
                repository_blobs, repository_blobs.c.digest == manifest_references.c.digest)
                .join(blobs, blobs.c.digest == manifest_references.c.digest))
            .where(manifest_references.c.manifest_id.in_(chunk),
                   manifest_references.c.kind == BLOB_REFERENCE,
                   repository_blobs.c.repository_id == repository_id)
        )).all():
            held[row.digest] = int(row.size)
    return total + sum(held.values())
