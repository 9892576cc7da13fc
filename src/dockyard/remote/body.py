"""Response bodies as they arrive: a broken or stalled connection is RemoteUnavailable, a
body that ends before its Content-Length too; manifests are read only up to a bound."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp

from dockyard.registry.mirror.remote import RemoteInvalid, RemoteUnavailable

CHUNK = 1024 * 1024


def content_length(response: aiohttp.ClientResponse) -> int | None:
    """The announced length; None when absent. A malformed one is the upstream's error."""
    header = response.headers.get("Content-Length")
    if header is None:
        return None
    if not header.strip().isdigit():
        raise RemoteInvalid(f"{response.url.host_port_subcomponent}: Content-Length "
                            f"{header[:40]!r} is not a length")
    return int(header)


async def pieces(response: aiohttp.ClientResponse, size: int = CHUNK,
                 ) -> AsyncIterator[bytes]:
    """The body in pieces of at most `size`; RemoteUnavailable if the connection breaks,
    stalls beyond the read timeout, or ends before Content-Length."""
    where = f"{response.url.host_port_subcomponent}{response.url.path}"
    expected = content_length(response)
    received = 0
    try:
        async for piece in response.content.iter_chunked(size):
            received += len(piece)
            yield piece
    except TimeoutError as exc:
        raise RemoteUnavailable(f"{where}: the body stalled after {received} bytes") from exc
    except aiohttp.ClientError as exc:
        raise RemoteUnavailable(f"{where}: the body broke off after {received} bytes "
                                f"({type(exc).__name__})") from exc
    if expected is not None and received < expected:
        raise RemoteUnavailable(f"{where}: the body ended after {received} of {expected} bytes")


async def read_bounded(response: aiohttp.ClientResponse, limit: int) -> bytes:
    """The whole body if it is at most `limit` bytes, else RemoteInvalid, without reading
    past limit + 1 (nor at all when Content-Length already says it is larger)."""
    where = f"{response.url.host_port_subcomponent}{response.url.path}"
    announced = content_length(response)
    if announced is not None and announced > limit:
        raise RemoteInvalid(f"{where}: {announced} bytes is more than the {limit} allowed")
    parts: list[bytes] = []
    total = 0
    async for piece in pieces(response, min(CHUNK, limit + 1)):
        parts.append(piece)
        total += len(piece)
        if total > limit:
            raise RemoteInvalid(f"{where}: the body is more than the {limit} bytes allowed")
    return b"".join(parts)


class Download:
    """A blob being downloaded (the mirror's `RemoteBlob`): the response stays open until
    the `open_blob` context ends."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response
        self._size = content_length(response)

    @property
    def size(self) -> int | None:
        return self._size

    def chunks(self) -> AsyncIterator[bytes]:
        return pieces(self._response)
