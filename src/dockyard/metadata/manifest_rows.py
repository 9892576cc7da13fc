"""Removing manifests with every row that names them, the one way each remover does it, and
the question each asks first: which manifests list the ones it would remove."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncConnection

from dockyard.metadata.batches import in_chunks
from dockyard.metadata.schema import (
    CHILD_REFERENCES,
    manifest_references,
    manifests,
    mirror_pulls,
    tags,
)


async def delete_manifest_rows(connection: AsyncConnection, ids: Collection[int]) -> None:
    """Delete these manifests, their tags, references and pull times, in the caller's
    transaction (which holds their row locks). Blob links are the caller's business."""
    for chunk in in_chunks(sorted(set(ids))):
        await connection.execute(delete(tags).where(tags.c.manifest_id.in_(chunk)))
        await connection.execute(
            delete(manifest_references).where(manifest_references.c.manifest_id.in_(chunk))
        )
        await connection.execute(delete(mirror_pulls).where(mirror_pulls.c.manifest_id.in_(chunk)))
        await connection.execute(delete(manifests).where(manifests.c.id.in_(chunk)))


async def listers_of(connection: AsyncConnection, repository_id: int,
                     digests: Sequence[str]) -> dict[str, set[int]]:
    """For each of `digests`, the ids of the repository's manifests that list it as a child
    (required or optional): a manifest still listed by one that stays must stay too."""
    listers: dict[str, set[int]] = {}
    for chunk in in_chunks(sorted(set(digests))):
        for row in (await connection.execute(
            select(manifest_references.c.digest, manifest_references.c.manifest_id)
            .select_from(manifest_references.join(
                manifests, manifests.c.id == manifest_references.c.manifest_id))
            .where(manifests.c.repository_id == repository_id,
                   manifest_references.c.kind.in_(CHILD_REFERENCES),
                   manifest_references.c.digest.in_(chunk))
        )).all():
            listers.setdefault(row.digest, set()).add(int(row.manifest_id))
    return listers
