"""Plain values the metadata store hands back."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class ManifestRecord:
    digest: str
    media_type: str
    content: bytes


@dataclass(frozen=True, slots=True)
class ManifestWrite:
    """Everything one manifest PUT commits, in one transaction."""

    digest: str
    media_type: str
    content: bytes
    artifact_type: str | None
    subject_digest: str | None
    annotations: str | None
    blob_digests: tuple[str, ...] = ()
    child_digests: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ReferrerRecord:
    digest: str
    media_type: str
    size: int
    artifact_type: str | None
    annotations: str | None


@dataclass(frozen=True, slots=True)
class UploadRecord:
    id: str
    repository: str
    created_at: datetime
    updated_at: datetime


class MissingReferences(Exception):
    """A manifest names blobs or child manifests its repository does not hold."""

    def __init__(self, blobs: list[str], manifests: list[str]) -> None:
        super().__init__(f"{len(blobs)} blobs and {len(manifests)} manifests missing")
        self.blobs = blobs
        self.manifests = manifests


class UploadGone(LookupError):
    """The upload session ended (cancelled or purged) before it could complete."""
