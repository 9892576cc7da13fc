"""Paged listings: tags of a repository, repositories, referrers of a manifest."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dockyard.metadata.interfaces import MetadataStore
from dockyard.oci import mediatypes
from dockyard.oci.digest import Digest
from dockyard.registry.errors import NameUnknown


@dataclass(frozen=True, slots=True)
class Page:
    items: list[Any]
    next_last: str | None
    """The `last` value that fetches the following page, or None on the last page."""


def _page(items: list[Any], limit: int, key: Any) -> Page:
    """Items were fetched with limit + 1 to learn whether more remain."""
    if len(items) > limit:
        kept = items[:limit]
        return Page(kept, key(kept[-1]) if kept else None)
    return Page(items, None)


class Listings:
    def __init__(self, metadata: MetadataStore) -> None:
        self._metadata = metadata

    async def tags(self, repository: str, limit: int, last: str | None) -> Page:
        if limit == 0:
            if not await self._metadata.repository_exists(repository):
                raise NameUnknown(detail={"name": repository})
            return Page([], None)
        names = await self._metadata.list_tags(repository, last, limit + 1)
        if names is None:
            raise NameUnknown(detail={"name": repository})
        return _page(names, limit, lambda name: name)

    async def repositories(self, limit: int, last: str | None,
                           visible: Callable[[str], bool] | None = None) -> Page:
        """`visible` hides repositories the caller may not read; pages stay full regardless."""
        if limit == 0:
            return Page([], None)
        if visible is None:
            names = await self._metadata.list_repositories(last, limit + 1)
            return _page(names, limit, lambda name: name)
        kept: list[str] = []
        cursor = last
        while len(kept) <= limit:
            batch = await self._metadata.list_repositories(cursor, limit + 1)
            kept.extend(name for name in batch if visible(name))
            if len(batch) <= limit:
                break
            cursor = batch[-1]
        return _page(kept[: limit + 1], limit, lambda name: name)

    async def referrers(self, repository: str, subject: Digest, artifact_type: str | None,
                        limit: int, last: str | None) -> Page:
        """Descriptors of manifests whose subject is `subject`, as the referrers API lists them."""
        if artifact_type is not None and not mediatypes.is_valid_media_type(artifact_type):
            return Page([], None)  # no manifest can have such an artifactType
        records = await self._metadata.list_referrers(
            repository, str(subject), artifact_type, last, limit + 1
        )
        descriptors: list[dict[str, Any]] = []
        for record in records:
            descriptor: dict[str, Any] = {
                "mediaType": record.media_type,
                "digest": record.digest,
                "size": record.size,
            }
            if record.artifact_type:
                descriptor["artifactType"] = record.artifact_type
            if record.annotations:
                descriptor["annotations"] = json.loads(record.annotations)
            descriptors.append(descriptor)
        return _page(descriptors, limit, lambda d: d["digest"])


def referrers_index(descriptors: list[dict[str, Any]]) -> dict[str, Any]:
    return {"schemaVersion": 2, "mediaType": mediatypes.OCI_INDEX, "manifests": descriptors}
