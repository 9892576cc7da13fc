"""The metadata ports: what registry/ may ask of the database, one Protocol per service.

`MetadataStore` serves requests (pushes, pulls, listings, uploads); the maintenance services
each get the narrow store they need (`MaintenanceStores`). Every implementation (the SQL
stores, the shared-cache and instrumented wrappers) is held to these by
tests/contract/metadata/. Every write that takes `events` records them in its own
transaction (the outbox), so a change is never without its event nor an event without it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from dockyard.metadata.records import (
    BlobRow,
    CachedImage,
    DanglingReference,
    DeletedManifest,
    EventRow,
    LeaseRecord,
    ManifestRecord,
    ManifestWrite,
    ReferrerRecord,
    RepositoryGraph,
    UploadRecord,
    Usage,
)

PlaceBytes = Callable[[], Awaitable[None]]
"""Make sure a blob's bytes are stored; run while its row is locked against GC."""

Remove = Callable[[list[str]], Awaitable[int]]
"""Remove these blobs' bytes; returns how many bytes that freed (missing ones free none)."""

Stale = Callable[[str], bool]
"""Whether a lease holder is known dead (its lease may be taken before it expires)."""


class MetadataStore(Protocol):
    """Repositories, blob links, upload sessions, manifests, tags and referrers."""

    def maintenance(self) -> MaintenanceStores:
        """The maintenance services' stores on the same database.

        A wrapper hands back stores wrapped alike, so that (for instance) GC's bulk removals
        reach the shared cache this store answers from.
        """
        ...

    async def close(self) -> None:
        """Release the database connections (and the cache's, if any)."""
        ...

    async def repository_exists(self, name: str) -> bool:
        """Whether anything was ever pushed or mounted into the repository."""
        ...

    async def list_repositories(self, last: str | None, limit: int) -> list[str]:
        """Up to `limit` repository names after `last`, in byte order."""
        ...

    async def linked_blob_size(self, repository: str, digest: str) -> int | None:
        """The blob's size if the repository holds it (pushed or mounted there), else None."""
        ...

    async def mount_blob(self, repository: str, digest: str, source: str,
                         events: Sequence[EventRow] = ()) -> int | None:
        """Link a live blob `source` holds into `repository`; its size, or None if `source`
        does not hold it. The link restarts the blob's GC grace period."""
        ...

    async def unlink_blob(self, repository: str, digest: str,
                          events: Sequence[EventRow] = ()) -> bool:
        """Remove the repository's link to a blob; False (and no events) if it had none."""
        ...

    async def create_upload(self, upload_id: str, repository: str) -> None:
        """Record a session; recording it again (two first chunks racing) changes nothing."""
        ...

    async def get_upload(self, upload_id: str) -> UploadRecord | None:
        """The session's row, or None once it completed, was cancelled or purged."""
        ...

    async def touch_upload(self, upload_id: str) -> None:
        """Mark the session as in use now, so purging leaves it alone."""
        ...

    async def delete_upload(self, upload_id: str) -> bool:
        """End the session (cancel); False if it had already ended."""
        ...

    async def complete_upload(self, upload_id: str, repository: str, digest: str,
                              size: int, place_bytes: PlaceBytes | None = None,
                              events: Sequence[EventRow] = (), has_row: bool = True) -> None:
        """End the session and link the blob it produced, together.

        The blob row is locked and live before `place_bytes` runs, so GC cannot delete the
        bytes that call makes sure are stored (registry/gc.py). UploadGone if the session's
        row was cancelled or purged meanwhile; `has_row=False` for a session that never had
        one (completed by its first request).
        """
        ...

    async def get_manifest(self, repository: str, digest: str) -> ManifestRecord | None:
        """The manifest stored in the repository under this digest, or None."""
        ...

    async def resolve_tag(self, repository: str, tag: str) -> ManifestRecord | None:
        """The manifest the tag points at, or None."""
        ...

    async def put_manifest(self, repository: str, write: ManifestWrite,
                           events: Sequence[EventRow] = ()) -> None:
        """Store a manifest, its references and its tags, or nothing (MissingReferences when
        the repository lacks a blob or child it names, unless `write.references_required` is
        False: a mirror's copy, whose blobs come later). Storing it again moves its tags."""
        ...

    async def delete_manifest(self, repository: str, digest: str,
                              remove_referrers: bool = False,
                              events: Sequence[EventRow] = ()) -> bool:
        """Remove a manifest with its tags and references; False if it is not stored.

        With `remove_referrers`, also the manifests whose subject it is, and theirs,
        recursively. Children of an index stay.
        """
        ...

    async def delete_tag(self, repository: str, tag: str,
                         events: Sequence[EventRow] = ()) -> bool:
        """Remove a tag (its manifest stays); False if there was no such tag."""
        ...

    async def list_tags(self, repository: str, last: str | None, limit: int) -> list[str] | None:
        """Up to `limit` tag names after `last`, in byte order; None when the repository does
        not exist."""
        ...

    async def list_referrers(self, repository: str, subject: str, artifact_type: str | None,
                             last: str | None, limit: int) -> list[ReferrerRecord]:
        """Manifests whose subject is `subject`, by digest after `last`, optionally only of
        one artifact type."""
        ...


class LeaseStore(Protocol):
    """Leases: one holder at a time for a cluster-wide job, and when it last finished."""

    async def try_lease(self, name: str, holder: str, ttl: float,
                        stale: Stale | None = None) -> bool:
        """Take the lease for `ttl` seconds if it is free, expired, ours, or held by a holder
        `stale` says is dead; False if someone else holds it."""
        ...

    async def renew_lease(self, name: str, holder: str, ttl: float) -> bool:
        """Extend our lease by `ttl` seconds from now; False if it is no longer ours."""
        ...

    async def release_lease(self, name: str, holder: str, finished: bool) -> None:
        """Give the lease up; `finished` records the job as done now (see `due`)."""
        ...

    async def lease(self, name: str) -> LeaseRecord | None:
        """The lease's state, or None if it was never taken."""
        ...

    async def due(self, name: str, interval: float) -> bool:
        """True when the job never finished or last finished `interval` seconds ago or more."""
        ...


class SettingStore(Protocol):
    """Run-time switches every worker and node reads (the read-only mode)."""

    async def get_setting(self, name: str) -> str | None:
        """The setting's value, or None if it was never set."""
        ...

    async def set_setting(self, name: str, value: str) -> None:
        """Set the value for every worker and node."""
        ...


class GCStore(Protocol):
    """The steps of garbage collection, each one transaction (the protocol is in registry/gc.py)."""

    async def garbage_blobs(self, cutoff: datetime, after: str | None,
                            limit: int) -> list[BlobRow]:
        """Live blobs after `after` nothing references and no repository linked since
        `cutoff`. Only candidates: `mark_blobs_deleting` re-checks each under its row lock."""
        ...

    async def mark_blobs_deleting(self, digests: Sequence[str],
                                  cutoff: datetime) -> list[BlobRow]:
        """Step 1: under the blob rows' locks, unlink those still garbage and mark them
        deleting; the ones marked."""
        ...

    async def pending_deletions(self, limit: int) -> list[str]:
        """Blobs marked by a run that stopped before their bytes were gone."""
        ...

    async def finish_deletions(self, digests: Sequence[str], remove: Remove
                               ) -> tuple[list[BlobRow], int]:
        """Step 2: remove the bytes of rows still marked, then the rows, under their locks;
        the rows removed and the bytes freed. A row an upload took back is left alone."""
        ...

    async def blobs_freed_by(self, manifest_ids: Sequence[int],
                             cutoff: datetime) -> list[BlobRow]:
        """Blobs that deleting these manifests would leave garbage (for a dry run)."""
        ...

    async def repositories(self) -> list[tuple[int, str]]:
        """(id, name) of every repository, by name."""
        ...

    async def manifest_graph(self, repository_id: int, name: str,
                             cutoff: datetime) -> RepositoryGraph:
        """The repository's manifests (tagged? pushed since `cutoff`?) and index edges."""
        ...

    async def delete_unreachable_manifests(self, repository_id: int, ids: Sequence[int],
                                           cutoff: datetime) -> list[DeletedManifest]:
        """Delete, in the order given (parents first), those still untagged, older than
        `cutoff` and listed by no index that stays; the ones deleted."""
        ...


class UsageStore(Protocol):
    """Storage use, deduplicated and logical (`dockyard du`, the usage API)."""

    async def usage(self, repository: str | None = None) -> Usage:
        """Per repository (or only `repository`) and in total."""
        ...


class IntegrityStore(Protocol):
    """What `dockyard check` compares the stored bytes with, and its repair."""

    async def count_blobs(self) -> tuple[int, int]:
        """How many live blobs there are, and their bytes."""
        ...

    async def live_blobs(self, after: str | None, limit: int) -> list[BlobRow]:
        """Up to `limit` live blobs after `after`, by digest."""
        ...

    async def is_live(self, digest: str) -> bool:
        """Whether the blob is live now (a check may race an upload or GC)."""
        ...

    async def known_blobs(self, digests: Sequence[str]) -> set[str]:
        """Which of these digests have a blob row in any state."""
        ...

    async def dangling_references(self, limit: int) -> list[DanglingReference]:
        """Manifests naming a blob their repository does not hold, or a missing child."""
        ...

    async def drop_blob(self, digest: str) -> bool:
        """Unlink a blob that cannot be served (missing or corrupt bytes), references or not,
        and mark it deleting; False if it was not live."""
        ...

    async def finish_deletions(self, digests: Sequence[str], remove: Remove
                               ) -> tuple[list[BlobRow], int]:
        """As GCStore.finish_deletions: repair removes what it dropped the way GC does."""
        ...


class UploadPurgeStore(Protocol):
    """Finding and ending upload sessions nobody used for a while."""

    async def stale_uploads(self, cutoff: datetime, after: str | None,
                            limit: int) -> list[str]:
        """Ids after `after` of sessions untouched since `cutoff`."""
        ...

    async def delete_stale_upload(self, upload_id: str, cutoff: datetime) -> bool:
        """End the session only if nobody touched it since `cutoff` (checked atomically)."""
        ...

    async def known_uploads(self, upload_ids: Sequence[str]) -> set[str]:
        """Which of these ids have a session row."""
        ...


class MirrorStore(Protocol):
    """A pull-through mirror's bookkeeping: tag revalidation, pull times, and eviction.

    Manifests a mirror caches are stored with `ManifestWrite.references_required=False`;
    their blobs are linked as clients fetch them. Eviction only unlinks: the bytes go with
    the next GC run, by its protocol.
    """

    async def tag_checked_at(self, repository: str, tag: str) -> datetime | None:
        """When the mirror last asked its upstream where the tag points (aware UTC), or None:
        within its TTL the cached tag is served without asking again."""
        ...

    async def mark_tag_checked(self, repository: str, tag: str,
                               at: datetime | None = None) -> None:
        """Record that the upstream was asked about the tag at `at` (now by default), whether
        or not the tag moved, so the TTL restarts."""
        ...

    async def mark_pulled(self, repository: str, digests: Sequence[str],
                          at: datetime | None = None) -> None:
        """Record these manifests as pulled at `at` (now by default), so eviction keeps them
        longest. One statement: it is on the pull path (the caller batches and throttles);
        digests the repository does not hold are ignored."""
        ...

    async def eviction_candidates(self, prefix: str, pulled_before: datetime | None,
                                  limit: int) -> list[CachedImage]:
        """Up to `limit` cached manifests in repositories under `prefix` ("" for all), least
        recently pulled first (one never pulled counts from when it was cached), optionally
        only those last used before `pulled_before`. Only roots: a manifest an index of its
        repository lists goes with that index."""
        ...

    async def cached_bytes(self, prefix: str) -> int:
        """Bytes held for the repositories under `prefix` ("" for all): each blob linked
        there once, plus their manifests. What a size limit is compared with."""
        ...

    async def evict(self, repository: str, digest: str) -> bool:
        """In one transaction, delete the manifest with its tags, the children it lists that
        nothing else in the repository lists, their pull and tag-check rows, and unlink the
        blobs no remaining manifest of the repository references (GC then removes their
        bytes safely). False if the repository does not hold the manifest."""
        ...


class EventLog(Protocol):
    """Where events that describe no change of their own (pulls) are recorded."""

    async def append(self, rows: Sequence[EventRow]) -> None:
        """Record these events in one transaction."""
        ...


@dataclass(frozen=True, slots=True)
class MaintenanceStores:
    """The stores of the maintenance services, one per service."""

    leases: LeaseStore
    settings: SettingStore
    gc: GCStore
    usage: UsageStore
    integrity: IntegrityStore
    purge: UploadPurgeStore
    mirror: MirrorStore
