"""Domain errors, each named by the OCI error code a client will see."""

from __future__ import annotations

import json
from typing import Any, ClassVar


class RegistryError(Exception):
    code: ClassVar[str]
    default_message: ClassVar[str]

    def __init__(self, message: str | None = None, detail: Any = None) -> None:
        self.message = message or self.default_message
        self.detail = detail
        super().__init__(self.message)


class BlobUnknown(RegistryError):
    code = "BLOB_UNKNOWN"
    default_message = "blob unknown to registry"


class BlobUploadInvalid(RegistryError):
    code = "BLOB_UPLOAD_INVALID"
    default_message = "blob upload invalid"


class UploadOutOfOrder(BlobUploadInvalid):
    """A chunk that does not start where the upload ends; the client resumes from `size`."""

    def __init__(self, upload_id: str, size: int, message: str) -> None:
        super().__init__(message)
        self.upload_id = upload_id
        self.size = size


class BlobUploadUnknown(RegistryError):
    code = "BLOB_UPLOAD_UNKNOWN"
    default_message = "blob upload unknown to registry"


class DigestInvalid(RegistryError):
    code = "DIGEST_INVALID"
    default_message = "provided digest did not match uploaded content"


class ManifestBlobUnknown(RegistryError):
    code = "MANIFEST_BLOB_UNKNOWN"
    default_message = "manifest references a blob unknown to the repository"


class ManifestInvalid(RegistryError):
    code = "MANIFEST_INVALID"
    default_message = "manifest invalid"


class ManifestUnknown(RegistryError):
    code = "MANIFEST_UNKNOWN"
    default_message = "manifest unknown to registry"


class ManifestReferenceUnknown(ManifestUnknown):
    """An index names a child manifest the repository does not hold: the push is invalid."""

    default_message = "manifest references a manifest unknown to the repository"


class ManifestTooLarge(RegistryError):
    code = "SIZE_INVALID"
    default_message = "manifest is larger than this registry accepts"


class NameInvalid(RegistryError):
    code = "NAME_INVALID"
    default_message = "invalid repository name"


class NameUnknown(RegistryError):
    code = "NAME_UNKNOWN"
    default_message = "repository name not known to registry"


class SizeInvalid(RegistryError):
    code = "SIZE_INVALID"
    default_message = "provided length did not match content length"


class Unsupported(RegistryError):
    code = "UNSUPPORTED"
    default_message = "the operation is unsupported"


class UpstreamUnavailable(RegistryError):
    """A mirrored repository's upstream cannot be reached and nothing cached answers."""

    code = "UNAVAILABLE"
    default_message = "the upstream registry cannot be reached and nothing is cached"


class UpstreamFailed(RegistryError):
    """The upstream refused the mirror's credentials or answered something unusable."""

    code = "UNKNOWN"
    default_message = "the upstream registry answered with an error"


class PaginationInvalid(RegistryError):
    code = "PAGINATION_NUMBER_INVALID"
    default_message = "invalid number of results requested"


class RegistryErrors(Exception):
    """Several errors answered together (one per unknown blob of a manifest, say)."""

    def __init__(self, errors: list[RegistryError]) -> None:
        super().__init__("; ".join(error.message for error in errors))
        self.errors = errors


def describe_error(error: BaseException) -> str:
    """An error as a command's report line names it: the registry's code and detail, or the
    message."""
    if isinstance(error, RegistryError):
        detail = f" ({json.dumps(error.detail)})" if error.detail else ""
        return f"{error.code}: {error.message}{detail}"
    if isinstance(error, RegistryErrors):
        return "; ".join(describe_error(item) for item in error.errors)
    return str(error) or type(error).__name__
