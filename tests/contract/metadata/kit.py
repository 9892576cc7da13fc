"""Writes the metadata tests make the way the registry makes them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from dockyard.metadata.interfaces import MetadataStore, Remove
from dockyard.metadata.records import ManifestWrite

CONFIG = "sha256:" + "c" * 64
LAYER = "sha256:" + "1" * 64
IMAGE = "application/vnd.oci.image.manifest.v1+json"
PAST = datetime.now(UTC) - timedelta(days=1)
"""As a cutoff: every row a test makes is younger (within a grace period, touched since)."""
FUTURE = datetime.now(UTC) + timedelta(days=1)
"""As a cutoff: every row a test makes is older."""


def digest(char: str) -> str:
    """A well-formed digest made of one repeated character."""
    return "sha256:" + char * 64


def manifest(digest: str, *, tags: tuple[str, ...] = (), blobs: tuple[str, ...] = (CONFIG,),
             children: tuple[str, ...] = (), optional_children: tuple[str, ...] = (),
             subject: str | None = None, artifact_type: str | None = None,
             size: int | None = None, cached: bool = False) -> ManifestWrite:
    """A manifest PUT; its content is `size` bytes (its digest's text by default). `cached`:
    as a mirror stores it, before the blobs and children it names."""
    content = digest.encode() if size is None else b"x" * size
    return ManifestWrite(
        digest=digest, media_type=IMAGE, content=content, artifact_type=artifact_type,
        subject_digest=subject, annotations=None, blob_digests=blobs, child_digests=children,
        optional_child_digests=optional_children, tags=tags, references_required=not cached,
    )


async def link(store: MetadataStore, repository: str, digest: str, size: int) -> None:
    """Push a blob into a repository as a monolithic upload does (no session row)."""
    await store.complete_upload(f"push-{repository}-{digest}", repository, digest, size,
                                has_row=False)


def freeing(size: int) -> Remove:
    """A byte remover (as GC's sweep takes) that reports `size` bytes freed per blob."""

    async def remove(digests: list[str]) -> int:
        return size * len(digests)

    return remove
