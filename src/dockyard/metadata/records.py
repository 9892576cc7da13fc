"""Plain values the metadata stores take and hand back."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class ManifestRecord:
    """A stored manifest as a pull serves it."""

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
    """Manifests an index lists that the repository must hold already."""
    optional_child_digests: tuple[str, ...] = ()
    """Manifests an index lists that the repository need not hold (a sparse index)."""
    tags: tuple[str, ...] = ()
    references_required: bool = True
    """False for a manifest a mirror caches before its blobs and children: every reference
    is recorded (children as optional ones), none has to be held yet, and the row is marked
    cached so the integrity check does not report the blobs it names as missing."""


@dataclass(frozen=True, slots=True)
class ReferrerRecord:
    """One entry of a referrers listing: what the OCI index descriptor needs."""

    digest: str
    media_type: str
    size: int
    artifact_type: str | None
    annotations: str | None


@dataclass(frozen=True, slots=True)
class UploadRecord:
    """An upload session's row."""

    id: str
    repository: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class EventRow:
    """An event ready to record: its id, what filters look at, and its JSON."""

    id: str
    action: str
    media_type: str | None
    created_at: datetime
    payload: str


@dataclass(frozen=True, slots=True)
class BlobRow:
    """A blob known to the metadata: its digest and size in bytes."""

    digest: str
    size: int


@dataclass(frozen=True, slots=True)
class ManifestNode:
    """One manifest of a repository as GC's reachability walk sees it."""

    id: int
    digest: str
    subject: str | None
    size: int
    tagged: bool
    recent: bool
    """Pushed within the grace period: a client may be about to push the index that needs it."""


@dataclass(frozen=True, slots=True)
class RepositoryGraph:
    """A repository's manifests and the index-to-child edges between them."""

    repository_id: int
    name: str
    nodes: list[ManifestNode]
    children: dict[int, list[str]]
    """Manifest id to the digests of the manifests it lists (an index's children)."""


@dataclass(frozen=True, slots=True)
class DeletedManifest:
    """A manifest GC deleted."""

    id: int
    digest: str
    size: int


@dataclass(frozen=True, slots=True)
class RepositoryUsage:
    """What one repository holds."""

    name: str
    blobs: int
    manifests: int
    logical_bytes: int
    """Blobs linked here plus manifests, each counted as if stored for this repository alone."""
    unique_bytes: int
    """What deleting the repository would free: bytes nothing else links or references."""


@dataclass(frozen=True, slots=True)
class Usage:
    """Storage use per repository and for the whole registry."""

    repositories: list[RepositoryUsage]
    blobs: int
    stored_bytes: int
    """Every live blob once, plus manifests: what the registry holds after deduplication."""
    logical_bytes: int
    """The sum over repositories: what it would hold without deduplication."""


@dataclass(frozen=True, slots=True)
class DanglingReference:
    """A manifest naming a blob its repository does not hold, or a missing child manifest."""

    repository: str
    manifest: str
    digest: str
    kind: str


@dataclass(frozen=True, slots=True)
class CachedImage:
    """A manifest a mirror cached, as eviction ranks it (see MirrorStore)."""

    repository: str
    digest: str
    last_pulled_at: datetime | None
    """None when it was never pulled since it was cached."""
    size: int
    """The manifest's bytes plus the stored blobs it and its children name, each blob once
    per image: approximate, since layers shared with other images count for each."""


@dataclass(frozen=True, slots=True)
class LeaseRecord:
    """A cluster-wide job's lease: who holds it, whether that ran out, when it last finished."""

    holder: str | None
    expired: bool
    finished_at: datetime | None


class MissingReferences(Exception):
    """A manifest names blobs or child manifests its repository does not hold."""

    def __init__(self, blobs: list[str], manifests: list[str]) -> None:
        super().__init__(f"{len(blobs)} blobs and {len(manifests)} manifests missing")
        self.blobs = blobs
        self.manifests = manifests


class UploadGone(LookupError):
    """The upload session ended (cancelled or purged) before it could complete."""
