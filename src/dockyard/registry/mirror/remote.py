"""The port a mirror fetches through: another registry, as far as pulling from it goes.

`dockyard.remote` implements it over HTTP (the token dance, Basic, TLS); tests and the
registry rules only see this shape. Errors are told apart by what the mirror does next: a
missing manifest or blob is the client's 404, an unreachable upstream falls back to the
cache, a refused login or a bad answer is an error the client sees, never cached.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Protocol

from dockyard.oci.digest import Digest


@dataclass(frozen=True, slots=True)
class RemoteDescriptor:
    """What a HEAD of a manifest tells: enough to see whether a cached tag moved."""

    digest: Digest
    media_type: str
    size: int


@dataclass(frozen=True, slots=True)
class RemoteManifest:
    """A manifest as fetched, its digest checked against its bytes."""

    digest: Digest
    media_type: str
    content: bytes


class RemoteBlob(Protocol):
    """An open blob download: its announced size and its bytes, once, as they arrive."""

    @property
    def size(self) -> int | None:
        """Content-Length, when the upstream sent one."""
        ...

    def chunks(self) -> AsyncIterator[bytes]:
        """The body; RemoteUnavailable if the connection breaks before its end."""
        ...


class RemoteError(Exception):
    """Anything that went wrong talking to the upstream; the message names it, never
    the credentials."""


class RemoteNotFound(RemoteError):
    """The upstream answered 404: the manifest, tag or blob does not exist there."""


class RemoteUnavailable(RemoteError):
    """The upstream could not be reached, timed out, cut the body short, answered 5xx or
    429: cached content is served instead where there is some."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        """Seconds the upstream asked us to wait (429 or 503 with Retry-After)."""


class RemoteRefused(RemoteError):
    """The upstream refused our credentials or access (401/403 after the token dance)."""


class RemoteInvalid(RemoteError):
    """The upstream answered something unusable: a wrong digest, a manifest too large or
    not JSON, a redirect the spec does not allow."""


class Remote(Protocol):
    """One upstream registry. Repository names here are the upstream's own."""

    @property
    def host(self) -> str:
        """host[:port] of the upstream, as containerd names it in `?ns=`."""
        ...

    async def ping(self) -> None:
        """GET /v2/ with our credentials; RemoteError unless the upstream serves us."""
        ...

    async def head_manifest(self, repository: str, reference: str) -> RemoteDescriptor:
        """HEAD a manifest by tag or digest."""
        ...

    async def get_manifest(self, repository: str, reference: str) -> RemoteManifest:
        """GET a manifest of any media type the registry serves, bounded in size; by digest,
        RemoteInvalid unless the bytes hash to it."""
        ...

    def open_blob(self, repository: str, digest: Digest
                  ) -> AbstractAsyncContextManager[RemoteBlob]:
        """Start a blob download (following the redirects the spec allows). The caller
        verifies the digest: the bytes are streamed, never held."""
        ...

    async def get_referrers(self, repository: str, digest: Digest) -> bytes | None:
        """The referrers index of `digest` (the OCI index JSON), or None when the upstream
        has no referrers API."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...
