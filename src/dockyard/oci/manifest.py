"""Parsing manifests just enough to know what they reference.

The registry stores manifests byte for byte; this module only reads out the descriptors a
registry must check (blobs, child manifests, subject) and what the referrers API reports.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dockyard.oci import boundedjson, mediatypes
from dockyard.oci.digest import Digest, InvalidDigest


class InvalidManifest(ValueError):
    """The manifest is malformed or inconsistent with its declared media type."""


@dataclass(frozen=True, slots=True)
class Platform:
    """The platform an index entry is for: what sparse-index rules select children by."""

    architecture: str
    os: str


@dataclass(frozen=True, slots=True)
class Descriptor:
    media_type: str
    digest: Digest
    size: int
    artifact_type: str | None = None
    annotations: dict[str, str] | None = None
    urls: tuple[str, ...] = ()
    """Where a client may fetch the content instead (foreign, non-distributable layers)."""
    platform: Platform | None = None


@dataclass(frozen=True, slots=True)
class ParsedManifest:
    media_type: str
    blobs: tuple[Descriptor, ...] = ()
    """Config and layers the repository must hold (non-distributable layers excluded)."""
    layers: tuple[Descriptor, ...] = ()
    """Every layer, non-distributable ones included (their `urls` are checked on push)."""
    children: tuple[Descriptor, ...] = ()
    """Manifests an index points at; they must exist in the repository."""
    subject: Descriptor | None = None
    artifact_type: str | None = None
    """What the referrers API reports: artifactType, else the config media type."""
    annotations: dict[str, str] = field(default_factory=dict)


def _strip_parameters(content_type: str | None) -> str | None:
    if content_type is None:
        return None
    if not (content_type.isascii() and content_type.isprintable()):
        raise InvalidManifest("Content-Type holds control or non-ASCII characters")
    bare = content_type.split(";", 1)[0].strip().lower()
    if bare and not mediatypes.is_valid_media_type(bare):
        raise InvalidManifest("Content-Type is not a media type (RFC 6838 type/subtype)")
    return bare or None


def _media_type(value: Any, where: str) -> str | None:
    """An optional media type field: a string of RFC 6838 form, or None when absent."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidManifest(f"{where} is not a string")
    if not mediatypes.is_valid_media_type(value):
        raise InvalidManifest(f"{where} is not a media type (RFC 6838 type/subtype, "
                              "at most 255 characters, no parameters)")
    return value


def _descriptor(value: Any, where: str) -> Descriptor:
    if not isinstance(value, dict):
        raise InvalidManifest(f"{where} is not a descriptor object")
    media_type = _media_type(value.get("mediaType"), f"{where}.mediaType")
    digest = value.get("digest")
    size = value.get("size")
    if media_type is None:
        raise InvalidManifest(f"{where}.mediaType is missing")
    if not isinstance(digest, str):
        raise InvalidManifest(f"{where}.digest is missing")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise InvalidManifest(f"{where}.size is not a non-negative integer")
    try:
        parsed = Digest.parse(digest)
    except InvalidDigest as exc:
        raise InvalidManifest(f"{where}.digest: {exc}") from exc
    artifact_type = _media_type(value.get("artifactType"), f"{where}.artifactType")
    annotations = _annotations(value.get("annotations"), where)
    return Descriptor(
        media_type,
        parsed,
        size,
        artifact_type,
        annotations or None,
        _urls(value.get("urls"), where),
        _platform(value.get("platform"), where),
    )


def _urls(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(url, str) for url in value):
        raise InvalidManifest(f"{where}.urls must be a list of strings")
    return tuple(value)


def _platform(value: Any, where: str) -> Platform | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidManifest(f"{where}.platform is not an object")
    architecture, os = value.get("architecture"), value.get("os")
    if not isinstance(architecture, str) or not isinstance(os, str):
        raise InvalidManifest(f"{where}.platform needs architecture and os strings")
    return Platform(architecture, os)


def _annotations(value: Any, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise InvalidManifest(f"{where}.annotations must map strings to strings")
    if not all(_encodable(k) and _encodable(v) for k, v in value.items()):
        raise InvalidManifest(f"{where}.annotations hold invalid Unicode (a lone surrogate)")
    return value


def _encodable(text: str) -> bool:
    """False for a lone surrogate (JSON allows the escape `\\ud800`; UTF-8 cannot hold it)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _descriptor_list(document: dict[str, Any], key: str, required: bool) -> list[Descriptor]:
    value = document.get(key)
    if value is None:
        if required:
            raise InvalidManifest(f"{key} is missing")
        return []
    if not isinstance(value, list):
        raise InvalidManifest(f"{key} is not a list")
    return [_descriptor(item, f"{key}[{i}]") for i, item in enumerate(value)]


def _guess_media_type(document: dict[str, Any]) -> str | None:
    if "manifests" in document:
        return mediatypes.OCI_INDEX
    if "config" in document or "layers" in document:
        return mediatypes.OCI_MANIFEST
    return None


def _resolve_media_type(document: dict[str, Any], content_type: str | None) -> str:
    declared = _media_type(document.get("mediaType"), "mediaType")
    header = _strip_parameters(content_type)
    if declared and header and header != "application/octet-stream" and declared != header:
        raise InvalidManifest(
            f"mediaType {declared!r} does not match Content-Type {header!r}"
        )
    if declared:
        return declared
    if header and header not in ("application/octet-stream", "application/json"):
        return header
    guessed = _guess_media_type(document)
    if guessed is None:
        raise InvalidManifest("cannot tell the manifest media type")
    return guessed


def parse(content: bytes, content_type: str | None) -> ParsedManifest:
    """Validate a manifest body and list what it references."""
    try:
        document = boundedjson.loads(content)
    except ValueError as exc:  # TooDeep, JSONDecodeError and UnicodeDecodeError alike
        raise InvalidManifest(f"not valid JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise InvalidManifest("a manifest is a JSON object")
    media_type = _resolve_media_type(document, content_type)
    if media_type in (mediatypes.DOCKER_SCHEMA1, mediatypes.DOCKER_SCHEMA1_SIGNED):
        raise InvalidManifest("Docker schema 1 manifests are not supported")
    if media_type not in mediatypes.MANIFESTS:
        # An unknown manifest type is stored opaquely: it references nothing we check. It is
        # served back as its Content-Type, so only a JSON type (never text/html) is accepted.
        if not mediatypes.is_json_type(media_type):
            raise InvalidManifest(f"manifest media type {media_type!r} is not supported")
        return ParsedManifest(media_type=media_type)
    if document.get("schemaVersion") != 2:
        raise InvalidManifest("schemaVersion must be 2")
    subject = document.get("subject")
    artifact_type = _media_type(document.get("artifactType"), "artifactType")
    annotations = _annotations(document.get("annotations"), "manifest")
    parsed_subject = _descriptor(subject, "subject") if subject is not None else None
    if media_type in mediatypes.INDEXES:
        return ParsedManifest(
            media_type=media_type,
            children=tuple(_descriptor_list(document, "manifests", required=True)),
            subject=parsed_subject,
            artifact_type=artifact_type,
            annotations=annotations,
        )
    config = _descriptor(document.get("config"), "config")
    layers = _descriptor_list(document, "layers", required=False)
    blobs = [config, *(d for d in layers if not mediatypes.is_non_distributable(d.media_type))]
    return ParsedManifest(
        media_type=media_type,
        blobs=tuple(blobs),
        layers=tuple(layers),
        subject=parsed_subject,
        artifact_type=artifact_type or config.media_type,
        annotations=annotations,
    )
