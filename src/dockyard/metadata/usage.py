"""Storage use per repository and in total: deduplicated (what is stored) and logical."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import exists, func, literal, select

from dockyard.metadata.engine import Engines
from dockyard.metadata.interfaces import UsageStore
from dockyard.metadata.records import RepositoryUsage, Usage
from dockyard.metadata.schema import (
    LIVE,
    blobs,
    manifest_references,
    manifests,
    repositories,
    repository_blobs,
)


@dataclass
class _Sizes:
    blobs: dict[int, tuple[int, int]] = field(default_factory=dict)
    unique: dict[int, int] = field(default_factory=dict)
    manifests: dict[int, tuple[int, int]] = field(default_factory=dict)


class SQLUsageStore(UsageStore):
    """UsageStore: a few aggregate reads."""

    def __init__(self, engines: Engines) -> None:
        self._engines = engines


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
