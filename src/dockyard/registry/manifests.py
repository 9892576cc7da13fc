"""Pushing, fetching and deleting manifests; one metadata transaction per push."""

from __future__ import annotations

import json
from collections.abc import AsyncIterable
from dataclasses import dataclass

from dockyard.metadata.records import ManifestRecord, ManifestWrite, MissingReferences
from dockyard.metadata.store import MetadataStore
from dockyard.oci import manifest as oci_manifest
from dockyard.oci.digest import Digest
from dockyard.registry.errors import (
    DigestInvalid,
    ManifestBlobUnknown,
    ManifestInvalid,
    ManifestReferenceUnknown,
    ManifestTooLarge,
    ManifestUnknown,
    RegistryError,
    RegistryErrors,
    Unsupported,
)
from dockyard.registry.references import check_tag, parse_manifest_reference


@dataclass(frozen=True, slots=True)
class PushedManifest:
    digest: Digest
    subject: Digest | None


async def _read_limited(body: AsyncIterable[bytes], limit: int) -> bytes:
    parts: list[bytes] = []
    total = 0
    async for chunk in body:
        total += len(chunk)
        if total > limit:
            raise ManifestTooLarge(detail={"limit": limit})
        parts.append(chunk)
    return b"".join(parts)


def _missing_errors(missing: MissingReferences) -> RegistryErrors:
    errors: list[RegistryError] = [ManifestBlobUnknown(detail={"digest": d}) for d in missing.blobs]
    errors += [ManifestReferenceUnknown(detail={"digest": d}) for d in missing.manifests]
    return RegistryErrors(errors)


class Manifests:
    def __init__(self, metadata: MetadataStore, max_bytes: int, delete_enabled: bool) -> None:
        self._metadata = metadata
        self._max_bytes = max_bytes
        self._delete_enabled = delete_enabled

    async def put(self, repository: str, reference: str, body: AsyncIterable[bytes],
                  content_type: str | None, extra_tags: list[str]) -> PushedManifest:
        target = parse_manifest_reference(reference)
        tags = [check_tag(tag) for tag in extra_tags]
        content = await _read_limited(body, self._max_bytes)
        if isinstance(target, Digest):
            digest = Digest.of(content, target.algorithm)
            if digest != target:
                raise DigestInvalid("manifest digest does not match its content",
                                    detail={"digest": str(target), "actual": str(digest)})
        else:
            digest = Digest.of(content)
            tags.insert(0, target)
        try:
            parsed = oci_manifest.parse(content, content_type)
        except oci_manifest.InvalidManifest as exc:
            raise ManifestInvalid(str(exc)) from exc
        write = ManifestWrite(
            digest=str(digest),
            media_type=parsed.media_type,
            content=content,
            artifact_type=parsed.artifact_type,
            subject_digest=str(parsed.subject.digest) if parsed.subject else None,
            annotations=json.dumps(parsed.annotations) if parsed.annotations else None,
            blob_digests=tuple(str(d.digest) for d in parsed.blobs),
            child_digests=tuple(str(d.digest) for d in parsed.children),
            tags=tuple(tags),
        )
        try:
            await self._metadata.put_manifest(repository, write)
        except MissingReferences as missing:
            raise _missing_errors(missing) from None
        return PushedManifest(digest, parsed.subject.digest if parsed.subject else None)

    async def get(self, repository: str, reference: str) -> ManifestRecord:
        target = parse_manifest_reference(reference)
        if isinstance(target, Digest):
            record = await self._metadata.get_manifest(repository, str(target))
        else:
            record = await self._metadata.resolve_tag(repository, target)
        if record is None:
            raise ManifestUnknown(detail={"reference": reference})
        return record

    async def delete(self, repository: str, reference: str) -> None:
        """By digest: the manifest and its tags. By tag: only the tag."""
        if not self._delete_enabled:
            raise Unsupported("deletion is disabled on this registry")
        target = parse_manifest_reference(reference)
        if isinstance(target, Digest):
            found = await self._metadata.delete_manifest(repository, str(target))
        else:
            found = await self._metadata.delete_tag(repository, target)
        if not found:
            raise ManifestUnknown(detail={"reference": reference})
