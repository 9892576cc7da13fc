"""Turning request text into checked names, tags and digests (or the right OCI error)."""

from __future__ import annotations

from dockyard.oci import reference
from dockyard.oci.digest import Digest, InvalidDigest
from dockyard.registry.errors import DigestInvalid, ManifestInvalid, ManifestUnknown, NameInvalid


def check_name(name: str) -> str:
    if not reference.is_valid_name(name):
        raise NameInvalid(detail={"name": name})
    return name


def check_tag(tag: str) -> str:
    if not reference.is_valid_tag(tag):
        raise ManifestInvalid("invalid tag", detail={"tag": tag})
    return tag


def parse_digest(text: str) -> Digest:
    try:
        return Digest.parse(text)
    except InvalidDigest as exc:
        raise DigestInvalid(str(exc), detail={"digest": text}) from exc


def parse_manifest_reference(text: str) -> Digest | str:
    """A manifest reference is a digest if it has a colon, else a tag."""
    if reference.is_digest_reference(text):
        return parse_digest(text)
    return check_tag(text)


def parse_manifest_lookup(text: str) -> Digest | str:
    """Like parse_manifest_reference, for reads: no manifest can sit behind an invalid tag.

    The spec answers a GET or HEAD of such a reference 404 MANIFEST_UNKNOWN; only a PUT with
    it is a bad request.
    """
    if reference.is_digest_reference(text):
        return parse_digest(text)
    if not reference.is_valid_tag(text):
        raise ManifestUnknown(detail={"reference": text})
    return text
