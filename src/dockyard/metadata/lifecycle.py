"""The metadata half of the storage lifecycle: GC, upload purging, usage, integrity, leases.

Every transaction here is one step of the GC protocol described in dockyard.registry.gc. They
work on SQLite, where the write engine serializes writers with BEGIN IMMEDIATE, and on
PostgreSQL at READ COMMITTED, where the blob row is the lock every writer meets: GC takes it
FOR UPDATE before it re-checks and unlinks; upload completion, mounts and manifest PUTs take
it before they add a link or a reference. SQLAlchemy drops FOR UPDATE/FOR SHARE on SQLite.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, exists, func, literal, select, update

from dockyard.metadata.engine import Engines
from dockyard.metadata.schema import (
    blobs,
    leases,
    manifest_references,
    manifests,
    repositories,
    repository_blobs,
    settings,
    tags,
    uploads,
)
from dockyard.metadata.upsert import Upsert

LIVE = "live"
DELETING = "deleting"
BLOB_REFERENCE = "blob"
MANIFEST_REFERENCE = "manifest"
IN_CHUNK = 500
"""Digests per IN (...) list: well below SQLite's and asyncpg's bound-parameter limits."""

Remove = Callable[[list[str]], Awaitable[int]]
"""Remove these blobs' bytes; returns how many bytes that freed (missing ones free none)."""


def _now() -> datetime:
    return datetime.now(UTC)


def _chunks(items: Sequence[Any], size: int = IN_CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


_ADD_LEASE = Upsert(leases, ["name"])
_SET_SETTING = Upsert(settings, ["name"], ["value", "updated_at"])


@dataclass(frozen=True, slots=True)
class BlobRow:
    digest: str
    size: int


@dataclass(frozen=True, slots=True)
class ManifestNode:
    id: int
    digest: str
    subject: str | None
    size: int
    tagged: bool
    recent: bool
    """Pushed within the grace period: a client may be about to push the index that needs it."""


@dataclass(frozen=True, slots=True)
class RepositoryGraph:
    repository_id: int
    name: str
    nodes: list[ManifestNode]
    children: dict[int, list[str]]
    """Manifest id to the digests of the manifests it lists (an index's children)."""


@dataclass(frozen=True, slots=True)
class DeletedManifest:
    id: int
    digest: str
    size: int


@dataclass(frozen=True, slots=True)
class RepositoryUsage:
    name: str
    blobs: int
    manifests: int
    logical_bytes: int
    """Blobs linked here plus manifests, each counted as if stored for this repository alone."""
    unique_bytes: int
    """What deleting the repository would free: bytes nothing else links or references."""


@dataclass(frozen=True, slots=True)
class Usage:
    repositories: list[RepositoryUsage]
    blobs: int
    stored_bytes: int
    """Every live blob once, plus manifests: what the registry holds after deduplication."""
    logical_bytes: int
    """The sum over repositories: what it would hold without deduplication."""


@dataclass(frozen=True, slots=True)
class DanglingReference:
    repository: str
    manifest: str
    digest: str
    kind: str


@dataclass(frozen=True, slots=True)
class LeaseRecord:
    holder: str | None
    expired: bool
    finished_at: datetime | None


@dataclass
class _Sizes:
    blobs: dict[int, tuple[int, int]] = field(default_factory=dict)
    unique: dict[int, int] = field(default_factory=dict)
    manifests: dict[int, tuple[int, int]] = field(default_factory=dict)


class LifecycleStore:
    def __init__(self, engines: Engines) -> None:
        self._engines = engines

    async def close(self) -> None:
        await self._engines.dispose()

    # -- leases: one holder at a time for cluster-wide jobs -----------------------------------

    async def try_lease(self, name: str, holder: str, ttl: float,
                        stale: Callable[[str], bool] | None = None) -> bool:
        """Take the lease if it is free, expired, ours, or held by a process known dead."""
        now = _now()
        async with self._engines.begin_write() as connection:
            await connection.execute(_ADD_LEASE.on(connection), {"name": name})
            row = (await connection.execute(
                select(leases.c.holder, (leases.c.expires_at < now).label("expired"))
                .where(leases.c.name == name)
                .with_for_update()
            )).one()
            current: str | None = row.holder
            free = current is None or current == holder or bool(row.expired)
            if not free and stale is not None and current is not None:
                free = stale(current)
            if not free:
                return False
            await connection.execute(
                update(leases).where(leases.c.name == name)
                .values(holder=holder, expires_at=now + timedelta(seconds=ttl))
            )
        return True

    async def renew_lease(self, name: str, holder: str, ttl: float) -> bool:
        async with self._engines.begin_write() as connection:
            result = await connection.execute(
                update(leases).where(leases.c.name == name, leases.c.holder == holder)
                .values(expires_at=_now() + timedelta(seconds=ttl))
            )
        return bool(result.rowcount)

    async def release_lease(self, name: str, holder: str, finished: bool) -> None:
        values: dict[str, Any] = {"holder": None, "expires_at": None}
        if finished:
            values["finished_at"] = _now()
        async with self._engines.begin_write() as connection:
            await connection.execute(
                update(leases).where(leases.c.name == name, leases.c.holder == holder)
                .values(**values)
            )

    async def lease(self, name: str) -> LeaseRecord | None:
        now = _now()
        async with self._engines.read.connect() as connection:
            row = (await connection.execute(
                select(leases.c.holder, (leases.c.expires_at < now).label("expired"),
                       leases.c.finished_at)
                .where(leases.c.name == name)
            )).first()
        if row is None:
            return None
        return LeaseRecord(row.holder, bool(row.expired), row.finished_at)

    async def due(self, name: str, interval: float) -> bool:
        """True when the job never finished or last finished `interval` seconds ago or more."""
        cutoff = _now() - timedelta(seconds=interval)
        async with self._engines.read.connect() as connection:
            finished = await connection.scalar(
                select(leases.c.finished_at).where(leases.c.name == name)
            )
            if finished is None:
                return True
            recent = await connection.scalar(
                select(literal(1)).where(leases.c.name == name, leases.c.finished_at >= cutoff)
            )
        return recent is None

    # -- settings ------------------------------------------------------------------------------

    async def get_setting(self, name: str) -> str | None:
        async with self._engines.read.connect() as connection:
            value = await connection.scalar(select(settings.c.value).where(settings.c.name == name))
        return None if value is None else str(value)

    async def set_setting(self, name: str, value: str) -> None:
        now = _now()
        async with self._engines.begin_write() as connection:
            await connection.execute(_SET_SETTING.on(connection),
                                     {"name": name, "value": value, "updated_at": now})

    # -- GC: blobs -----------------------------------------------------------------------------

    async def garbage_blobs(self, cutoff: datetime, after: str | None,
                            limit: int) -> list[BlobRow]:
        """Live blobs nothing references and no repository linked since `cutoff`.

        Only candidates: mark_blobs_deleting re-checks each under its row lock.
        """
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
            rows = (await connection.execute(
                select(blobs.c.digest, blobs.c.size)
                .where(blobs.c.digest.in_(sorted(set(digests))), blobs.c.state == LIVE)
                .order_by(blobs.c.digest)
                .with_for_update()
            )).all()
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
            doomed = [BlobRow(row.digest, int(row.size)) for row in rows
                      if row.digest not in kept]
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
        """Blobs marked by a run that stopped before their bytes were gone."""
        async with self._engines.read.connect() as connection:
            return list((await connection.scalars(
                select(blobs.c.digest).where(blobs.c.state == DELETING)
                .order_by(blobs.c.digest).limit(limit)
            )).all())

    async def finish_deletions(self, digests: Sequence[str], remove: Remove
                               ) -> tuple[list[BlobRow], int]:
        """Step 2: delete the bytes of rows still marked, then the rows, under their locks.

        A row an upload reclaimed meanwhile is live again and left alone. If this transaction
        dies after unlinking, the rows stay marked and the next run finishes them.
        """
        if not digests:
            return [], 0
        async with self._engines.begin_write() as connection:
            rows = (await connection.execute(
                select(blobs.c.digest, blobs.c.size)
                .where(blobs.c.digest.in_(sorted(set(digests))), blobs.c.state == DELETING)
                .order_by(blobs.c.digest)
                .with_for_update()
            )).all()
            done = [BlobRow(row.digest, int(row.size)) for row in rows]
            if not done:
                return [], 0
            freed = await remove([row.digest for row in done])
            await connection.execute(
                delete(blobs).where(blobs.c.digest.in_([row.digest for row in done]),
                                    blobs.c.state == DELETING)
            )
        return done, freed

    async def drop_blob(self, digest: str) -> bool:
        """Unlink a blob that cannot be served (missing or corrupt bytes), references or not."""
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

    async def blobs_freed_by(self, manifest_ids: Iterable[int],
                             cutoff: datetime) -> list[BlobRow]:
        """Blobs that deleting these manifests would leave garbage (for a dry run)."""
        doomed = set(manifest_ids)
        if not doomed:
            return []
        async with self._engines.read.connect() as connection:
            candidates: set[str] = set()
            for chunk in _chunks(sorted(doomed)):
                candidates |= set((await connection.scalars(
                    select(manifest_references.c.digest).distinct()
                    .where(manifest_references.c.manifest_id.in_(chunk))
                )).all())
            freed: list[BlobRow] = []
            for chunk in _chunks(sorted(candidates)):
                users: dict[str, set[int]] = {}
                for row in (await connection.execute(
                    select(manifest_references.c.digest, manifest_references.c.manifest_id)
                    .where(manifest_references.c.digest.in_(chunk))
                )).all():
                    users.setdefault(row.digest, set()).add(int(row.manifest_id))
                only_doomed = [d for d, ids in users.items() if ids <= doomed]
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
                       manifest_references.c.kind == MANIFEST_REFERENCE)
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
            parents: dict[str, set[int]] = {}
            for edge in (await connection.execute(
                select(manifest_references.c.digest, manifest_references.c.manifest_id)
                .select_from(manifest_references.join(
                    manifests, manifests.c.id == manifest_references.c.manifest_id))
                .where(manifests.c.repository_id == repository_id,
                       manifest_references.c.kind == MANIFEST_REFERENCE,
                       manifest_references.c.digest.in_([row.digest for row in rows.values()]))
            )).all():
                parents.setdefault(edge.digest, set()).add(int(edge.manifest_id))
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
                await connection.execute(
                    delete(manifest_references).where(manifest_references.c.manifest_id.in_(gone))
                )
                await connection.execute(delete(manifests).where(manifests.c.id.in_(gone)))
        return doomed

    # -- usage ---------------------------------------------------------------------------------

    async def usage(self, repository: str | None = None) -> Usage:
        sizes = _Sizes()
        link = repository_blobs.alias("link")
        other_link = repository_blobs.alias("other_link")
        scope: Any = literal(True)
        if repository is not None:
            scope = link.c.repository_id == select(repositories.c.id).where(
                repositories.c.name == repository).scalar_subquery()
        linked = link.join(blobs, blobs.c.digest == link.c.digest)
        shared_link = exists().where(other_link.c.digest == link.c.digest,
                                     other_link.c.repository_id != link.c.repository_id)
        shared_reference = exists().where(
            manifest_references.c.digest == link.c.digest,
            manifest_references.c.manifest_id == manifests.c.id,
            manifests.c.repository_id != link.c.repository_id,
        )
        async with self._engines.read.connect() as connection:
            names = {int(row.id): str(row.name) for row in (await connection.execute(
                select(repositories.c.id, repositories.c.name)
                .where(literal(True) if repository is None else repositories.c.name == repository)
            )).all()}
            for row in (await connection.execute(
                select(link.c.repository_id, func.count(), func.sum(blobs.c.size))
                .select_from(linked).where(scope).group_by(link.c.repository_id)
            )).all():
                sizes.blobs[int(row[0])] = (int(row[1]), int(row[2] or 0))
            for row in (await connection.execute(
                select(link.c.repository_id, func.sum(blobs.c.size))
                .select_from(linked).where(scope, ~shared_link, ~shared_reference)
                .group_by(link.c.repository_id)
            )).all():
                sizes.unique[int(row[0])] = int(row[1] or 0)
            manifest_scope: Any = (
                literal(True) if repository is None
                else manifests.c.repository_id.in_(list(names) or [-1])
            )
            for row in (await connection.execute(
                select(manifests.c.repository_id, func.count(), func.sum(manifests.c.size))
                .where(manifest_scope).group_by(manifests.c.repository_id)
            )).all():
                sizes.manifests[int(row[0])] = (int(row[1]), int(row[2] or 0))
            totals = (await connection.execute(
                select(func.count(), func.sum(blobs.c.size)).where(blobs.c.state == LIVE)
            )).one()
        per_repository = []
        for repository_id, name in sorted(names.items(), key=lambda item: item[1]):
            blob_count, blob_bytes = sizes.blobs.get(repository_id, (0, 0))
            manifest_count, manifest_bytes = sizes.manifests.get(repository_id, (0, 0))
            per_repository.append(RepositoryUsage(
                name, blob_count, manifest_count, blob_bytes + manifest_bytes,
                sizes.unique.get(repository_id, 0) + manifest_bytes,
            ))
        all_manifest_bytes = sum(size for _, size in sizes.manifests.values())
        if repository is not None:
            stored = sum(item.unique_bytes for item in per_repository)
            count = sum(item.blobs for item in per_repository)
        else:
            stored = int(totals[1] or 0) + all_manifest_bytes
            count = int(totals[0])
        return Usage(per_repository, count, stored,
                     sum(item.logical_bytes for item in per_repository))

    # -- integrity -----------------------------------------------------------------------------

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
        """Which of these digests have a blob row in any state."""
        found: set[str] = set()
        async with self._engines.read.connect() as connection:
            for chunk in _chunks(list(digests)):
                found |= set((await connection.scalars(
                    select(blobs.c.digest).where(blobs.c.digest.in_(chunk))
                )).all())
        return found

    async def dangling_references(self, limit: int) -> list[DanglingReference]:
        """Manifests naming a blob their repository does not hold, or a missing child."""
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
            (and_(manifest_references.c.kind == BLOB_REFERENCE, ~blob_held))
            | (and_(manifest_references.c.kind == MANIFEST_REFERENCE, ~child_held))
        ).order_by(repositories.c.name, parent.c.digest).limit(limit)
        async with self._engines.read.connect() as connection:
            rows = (await connection.execute(query)).all()
        return [DanglingReference(row.name, row.manifest, row.digest, row.kind) for row in rows]

    # -- upload purging ------------------------------------------------------------------------

    async def stale_uploads(self, cutoff: datetime, after: str | None,
                            limit: int) -> list[str]:
        query = (select(uploads.c.id).where(uploads.c.updated_at < cutoff)
                 .order_by(uploads.c.id).limit(limit))
        if after is not None:
            query = query.where(uploads.c.id > after)
        async with self._engines.read.connect() as connection:
            return list((await connection.scalars(query)).all())

    async def delete_stale_upload(self, upload_id: str, cutoff: datetime) -> bool:
        """End the session only if nobody touched it since the cutoff (checked atomically)."""
        async with self._engines.begin_write() as connection:
            result = await connection.execute(
                delete(uploads).where(uploads.c.id == upload_id, uploads.c.updated_at < cutoff)
            )
        return bool(result.rowcount)

    async def known_uploads(self, upload_ids: Sequence[str]) -> set[str]:
        found: set[str] = set()
        async with self._engines.read.connect() as connection:
            for chunk in _chunks(list(upload_ids)):
                found |= set((await connection.scalars(
                    select(uploads.c.id).where(uploads.c.id.in_(chunk))
                )).all())
        return found
