"""What a manifest answer is: its media type and its digest, checked against its bytes."""

from __future__ import annotations

from dockyard.oci import boundedjson
from dockyard.oci.digest import Digest, InvalidDigest
from dockyard.oci.mediatypes import (
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    OCI_INDEX,
    OCI_MANIFEST,
)
from dockyard.registry.mirror.remote import RemoteInvalid

OCI_ARTIFACT_MANIFEST = "application/vnd.oci.artifact.manifest.v1+json"
"""From the OCI 1.1 release candidates; a few registries still serve it."""

ACCEPT = ", ".join([OCI_INDEX, OCI_MANIFEST, DOCKER_MANIFEST_LIST, DOCKER_MANIFEST,
                    OCI_ARTIFACT_MANIFEST])
"""Indexes first: a mirror keeps the multi-platform answer, the client picks its platform."""

_GENERIC_TYPES = frozenset({"", "application/json", "application/octet-stream", "text/plain"})


def bare_type(content_type: str | None) -> str:
    """A Content-Type without its parameters (`; charset=utf-8`)."""
    return (content_type or "").split(";", 1)[0].strip()


def media_type_of(content_type: str | None, content: bytes, where: str) -> str:
    """The Content-Type, or when that says nothing specific, the document's `mediaType`.
    RemoteInvalid unless the bytes are a JSON object."""
    try:
        document = boundedjson.loads(content)
    except ValueError as exc:
        raise RemoteInvalid(f"{where}: the manifest is not JSON") from exc
    if not isinstance(document, dict):
        raise RemoteInvalid(f"{where}: the manifest is not a JSON object")
    declared = bare_type(content_type)
    if declared not in _GENERIC_TYPES:
        return declared
    inner = document.get("mediaType")
    if isinstance(inner, str) and inner:
        return inner
    raise RemoteInvalid(f"{where}: the manifest has no media type")


def digest_reference(reference: str) -> Digest | None:
    """The digest a by-digest reference names; None for a tag."""
    if ":" not in reference:
        return None
    try:
        return Digest.parse(reference)
    except InvalidDigest as exc:
        raise ValueError(f"{reference!r} is neither a tag nor a digest") from exc


def announced_digest(header: str | None, where: str) -> Digest | None:
    """The upstream's `Docker-Content-Digest`, if it sent one; RemoteInvalid if malformed."""
    if header is None:
        return None
    try:
        return Digest.parse(header.strip())
    except InvalidDigest as exc:
        raise RemoteInvalid(f"{where}: Docker-Content-Digest {header[:80]!r} is not a "
                            "digest") from exc


def checked_digest(content: bytes, expected: Digest | None, announced: Digest | None,
                   where: str) -> Digest:
    """The digest of a fetched manifest: by digest the bytes must hash to the reference, by
    tag their sha256 is the digest; either way they must agree with the announcement."""
    actual = Digest.of(content, expected.algorithm if expected else "sha256")
    if expected is not None and actual != expected:
        raise RemoteInvalid(f"{where}: the manifest does not hash to {expected}")
    if announced is not None and Digest.of(content, announced.algorithm) != announced:
        raise RemoteInvalid(f"{where}: the manifest does not hash to its "
                            f"Docker-Content-Digest {announced}")
    return actual
