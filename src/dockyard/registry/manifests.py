"""Pushing, fetching and deleting manifests; one metadata transaction per push."""

from __future__ import annotations

import json
from collections.abc import AsyncIterable
from dataclasses import dataclass

from dockyard.metadata.interfaces import MetadataStore
from dockyard.metadata.records import ManifestRecord, ManifestWrite, MissingReferences
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
from dockyard.registry.events import EventContext, EventRecorder, Reference
from dockyard.registry.references import (
    check_tag,
    parse_manifest_lookup,
    parse_manifest_reference,
)
from dockyard.registry.validation import ManifestRules, ManifestValidator


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


def manifest_write(digest: Digest, content: bytes, parsed: oci_manifest.ParsedManifest,
                   tags: list[str], children: tuple[tuple[str, ...], tuple[str, ...]],
                   references_required: bool = True) -> ManifestWrite:
    """What storing a parsed manifest commits; `children`: required and optional digests."""
    required, optional = children
    return ManifestWrite(
        digest=str(digest),
        media_type=parsed.media_type,
        content=content,
        artifact_type=parsed.artifact_type,
        subject_digest=str(parsed.subject.digest) if parsed.subject else None,
        annotations=json.dumps(parsed.annotations) if parsed.annotations else None,
        blob_digests=tuple(str(d.digest) for d in parsed.blobs),
        child_digests=required,
        optional_child_digests=optional,
        tags=tuple(tags),
        references_required=references_required,
    )


class Manifests:
    def __init__(self, metadata: MetadataStore, max_bytes: int, delete_enabled: bool,
                 remove_referrers: bool = False, events: EventRecorder | None = None,
                 rules: ManifestRules | None = None) -> None:
        self._metadata = metadata
        self._validator = ManifestValidator(rules or ManifestRules())
        self._max_bytes = max_bytes
        self._delete_enabled = delete_enabled
        self._remove_referrers = remove_referrers
        self._events = events or EventRecorder(None)

    async def put(self, repository: str, reference: str, body: AsyncIterable[bytes],
                  content_type: str | None, extra_tags: list[str],
                  context: EventContext | None = None) -> PushedManifest:
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
        self._validator.check_urls(parsed)
        write = manifest_write(digest, content, parsed, tags,
                               self._validator.split_children(parsed))
        events = self._events.manifest_pushed(
            context, repository, write.digest, write.media_type, len(content), write.tags,
            [Reference(d.media_type, str(d.digest), d.size)
             for d in (*parsed.blobs, *parsed.children)] if context is not None else [],
        )
        try:
            await self._metadata.put_manifest(repository, write, events=events)
        except MissingReferences as missing:
            raise _missing_errors(missing) from None
        if events:
            self._events.committed()
        return PushedManifest(digest, parsed.subject.digest if parsed.subject else None)

    async def get(self, repository: str, reference: str,
                  pulled_by: EventContext | None = None) -> ManifestRecord:
        """`pulled_by`: the caller fetches the content (a GET), which is a pull event."""
        target = parse_manifest_lookup(reference)
        record = await self._find(repository, target)
        if record is None:
            raise ManifestUnknown(detail={"reference": reference})
        if pulled_by is not None:
            self._events.manifest_pulled(
                pulled_by, repository, record.digest, record.media_type, len(record.content),
                None if isinstance(target, Digest) else target,
            )
        return record

    async def refresh_referrers(self, repository: str, subject: Digest) -> None:
        """Bring the referrers listing of `subject` up to date before it is read: nothing to
        do where pushes are the only source (a mirror fetches its upstream's)."""

    async def _find(self, repository: str, target: Digest | str) -> ManifestRecord | None:
        """The stored manifest a digest or tag names (a mirror looks further)."""
        if isinstance(target, Digest):
            return await self._metadata.get_manifest(repository, str(target))
        return await self._metadata.resolve_tag(repository, target)

    async def delete(self, repository: str, reference: str,
                     context: EventContext | None = None) -> None:
        """By digest: the manifest and its tags (and its referrers, by policy). By tag: only
        the tag; the manifest stays, untagged, until GC with delete-untagged collects it."""
        if not self._delete_enabled:
            raise Unsupported("deletion is disabled on this registry")
        target = parse_manifest_reference(reference)
        if isinstance(target, Digest):
            events = self._events.manifest_deleted(context, repository, str(target))
            found = await self._metadata.delete_manifest(repository, str(target),
                                                         self._remove_referrers, events=events)
        else:
            events = self._events.tag_deleted(context, repository, target)
            found = await self._metadata.delete_tag(repository, target, events=events)
        if not found:
            raise ManifestUnknown(detail={"reference": reference})
        if events:
            self._events.committed()
