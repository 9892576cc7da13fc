"""Every table, in SQLAlchemy Core. Alembic migrations create them; this module names them.

All of them live here so that Alembic's autogenerate, which compares the migrations with this
MetaData, sees the whole schema whichever stores happen to be imported.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
)

DIGEST = String(160)
SEQUENCE = BigInteger().with_variant(Integer(), "sqlite")

LIVE = "live"
"""blobs.state of a blob whose bytes are stored; GC's protocol is in registry/gc.py."""
DELETING = "deleting"
"""blobs.state once GC has unlinked the blob and is about to remove its bytes."""
BLOB_REFERENCE = "blob"
"""manifest_references.kind of a layer or config the manifest names."""
MANIFEST_REFERENCE = "manifest"
"""manifest_references.kind of a child manifest an index lists."""
OPTIONAL_MANIFEST_REFERENCE = "optional"
"""manifest_references.kind of a child a sparse index lists: the repository need not hold it."""
CHILD_REFERENCES = (MANIFEST_REFERENCE, OPTIONAL_MANIFEST_REFERENCE)
"""Both kinds of child: GC keeps what either names."""
SUBJECT_REFERENCE = "subject"
"""manifest_references.kind of the manifest a referrer points at."""


def ordered_string(length: int) -> String:
    """Text compared byte by byte, so listings sort the same on every engine."""
    return String(length).with_variant(String(length, collation="C"), "postgresql")


metadata = MetaData()

repositories = Table(
    "repositories",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", ordered_string(255), nullable=False, unique=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

blobs = Table(
    "blobs",
    metadata,
    Column("digest", DIGEST, primary_key=True),
    Column("size", BigInteger, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("state", String(16), nullable=False, server_default=LIVE),
)
"""`state` is LIVE, or DELETING once GC has unlinked it (see registry/gc.py)."""

repository_blobs = Table(
    "repository_blobs",
    metadata,
    Column("repository_id", Integer, ForeignKey("repositories.id"), nullable=False),
    Column("digest", DIGEST, ForeignKey("blobs.digest"), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("repository_id", "digest"),
    Index("ix_repository_blobs_digest", "digest"),
)

manifests = Table(
    "manifests",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("repository_id", Integer, ForeignKey("repositories.id"), nullable=False),
    Column("digest", DIGEST, nullable=False),
    Column("media_type", String(255), nullable=False),
    Column("artifact_type", String(255), nullable=True),
    Column("size", BigInteger, nullable=False),
    Column("content", LargeBinary, nullable=False),
    Column("subject_digest", DIGEST, nullable=True),
    Column("annotations", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("cached", Boolean, nullable=False, server_default=false()),
    UniqueConstraint("repository_id", "digest", name="uq_manifests_repository_digest"),
    Index("ix_manifests_subject", "repository_id", "subject_digest"),
)
"""`cached`: stored by a mirror before the blobs and children it names (ManifestWrite's
`references_required=False`), which it fetches when a client asks for them."""

manifest_references = Table(
    "manifest_references",
    metadata,
    Column("manifest_id", Integer, ForeignKey("manifests.id"), nullable=False),
    Column("digest", DIGEST, nullable=False),
    Column("kind", String(16), nullable=False),
    PrimaryKeyConstraint("manifest_id", "digest", "kind"),
    Index("ix_manifest_references_digest", "digest"),
)

tags = Table(
    "tags",
    metadata,
    Column("repository_id", Integer, ForeignKey("repositories.id"), nullable=False),
    Column("name", ordered_string(128), nullable=False),
    Column("manifest_id", Integer, ForeignKey("manifests.id"), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("repository_id", "name"),
    Index("ix_tags_manifest", "manifest_id"),
)

mirror_pulls = Table(
    "mirror_pulls",
    metadata,
    Column("manifest_id", Integer, ForeignKey("manifests.id"), primary_key=True),
    Column("pulled_at", DateTime(timezone=True), nullable=False),
)
"""When a mirror last served each manifest: eviction drops the least recently pulled."""

mirror_tag_checks = Table(
    "mirror_tag_checks",
    metadata,
    Column("repository", ordered_string(255), nullable=False),
    Column("tag", ordered_string(128), nullable=False),
    Column("checked_at", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("repository", "tag"),
)
"""When a mirror last asked its upstream where a tag points. By name, not by repository id:
a tag may be checked (and found missing upstream) before the repository holds anything."""

uploads = Table(
    "uploads",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("repository", String(255), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

leases = Table(
    "leases",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("holder", String(255), nullable=True),
    Column("expires_at", DateTime(timezone=True), nullable=True),
    Column("finished_at", DateTime(timezone=True), nullable=True),
)
"""One row per cluster-wide job (gc, uploadpurging): who runs it, until when, last finish."""

settings = Table(
    "settings",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", Text, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)
"""Switches every worker and node reads at run time (readonly)."""

event_counter = Table(
    "event_counter",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("value", SEQUENCE, nullable=False),
)

events = Table(
    "events",
    metadata,
    Column("seq", SEQUENCE, primary_key=True, autoincrement=False),
    Column("id", String(64), nullable=False, unique=True),
    Column("action", String(16), nullable=False),
    Column("media_type", String(255), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("payload", Text, nullable=False),
    Index("ix_events_created_at", "created_at"),
)
"""`payload` is one event object as receivers get it (JSON text)."""

event_endpoints = Table(
    "event_endpoints",
    metadata,
    Column("name", String(255), primary_key=True),
    Column("last_seq", SEQUENCE, nullable=False),
    Column("delivered", SEQUENCE, nullable=False, server_default="0"),
    Column("failures", Integer, nullable=False, server_default="0"),
    Column("last_error", Text, nullable=True),
    Column("last_success_at", DateTime(timezone=True), nullable=True),
    Column("last_failure_at", DateTime(timezone=True), nullable=True),
    Column("next_attempt_at", DateTime(timezone=True), nullable=True),
    Column("lease_holder", String(255), nullable=True),
    Column("lease_expires_at", DateTime(timezone=True), nullable=True),
)

event_dead_letters = Table(
    "event_dead_letters",
    metadata,
    Column("endpoint", String(255), nullable=False),
    Column("seq", SEQUENCE, nullable=False),
    Column("failed_at", DateTime(timezone=True), nullable=False),
    Column("last_error", Text, nullable=True),
    Column("replay_at", DateTime(timezone=True), nullable=True),
    PrimaryKeyConstraint("endpoint", "seq"),
    Index("ix_event_dead_letters_seq", "seq"),
)
"""`replay_at` set: queued for another try (`dockyard events replay --dead`)."""
