"""Media types the registry understands structurally."""

import re

# RFC 6838 type/subtype names (parameters are not part of an artifactType).
_RESTRICTED_NAME = r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}"
_MEDIA_TYPE = re.compile(rf"{_RESTRICTED_NAME}/{_RESTRICTED_NAME}")

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+json"
DOCKER_SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"

IMAGE_MANIFESTS = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
INDEXES = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})
MANIFESTS = IMAGE_MANIFESTS | INDEXES

# Layers a registry is not expected to hold: pushed elsewhere, referenced by URL.
_NON_DISTRIBUTABLE_PREFIXES = (
    "application/vnd.oci.image.layer.nondistributable.",
    "application/vnd.docker.image.rootfs.foreign.",
)


def is_non_distributable(media_type: str) -> bool:
    return media_type.startswith(_NON_DISTRIBUTABLE_PREFIXES)


def is_valid_media_type(text: str) -> bool:
    """RFC 6838 `type/subtype`, at most 255 ASCII characters, no parameters: what is stored
    and later served as a header can carry no CR, LF, NUL, space or non-ASCII byte."""
    return _MEDIA_TYPE.fullmatch(text) is not None


def is_json_type(media_type: str) -> bool:
    """Whether a browser treats the type as data: a manifest of a type the registry does not
    know is stored only under such a type, so it is never served back as HTML or script."""
    kind, _, subtype = media_type.lower().partition("/")
    return kind == "application" and (subtype == "json" or subtype.endswith("+json"))
