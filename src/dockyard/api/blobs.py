"""GET, HEAD and DELETE of /v2/<name>/blobs/<digest>."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from aiohttp import web
from aiohttp.abc import AbstractStreamWriter

from dockyard.api.appkeys import REGISTRY
from dockyard.api.events import event_context, pull_context
from dockyard.api.ranges import RangeNotSatisfiable, parse_range
from dockyard.api.sendfile import SendfileResponse
from dockyard.registry.blobs import BlobInfo, Download
from dockyard.registry.references import parse_digest
from dockyard.registry.registry import Registry

log = logging.getLogger("dockyard.api.blobs")

BLOB_CONTENT_TYPE = "application/octet-stream"
# Where the body cannot go by sendfile (TLS), aiohttp copies the file through Python: in
# large pieces, each read costs one thread hop and each write one syscall.
FILE_CHUNK = 4 << 20


def _headers(info: BlobInfo) -> dict[str, str]:
    return {
        "Docker-Content-Digest": str(info.digest),
        "Accept-Ranges": "bytes",
        "Content-Type": BLOB_CONTENT_TYPE,
        "Cache-Control": "max-age=31536000",
    }


async def get_blob(request: web.Request, name: str, digest_text: str) -> web.StreamResponse:
    registry = request.app[REGISTRY]
    info = await registry.blobs.stat(name, parse_digest(digest_text), pull_context(request))
    headers = _headers(info)
    if info.download is not None:
        return await _download(request, info.download, headers)
    if request.method == "HEAD":
        headers["Content-Length"] = str(info.size)
        return web.Response(headers=headers)
    if info.local_path is not None:
        return SendfileResponse(info.local_path, chunk_size=FILE_CHUNK, headers=headers,
                                whole=_unread_range(request, info.size))
    redirect = await registry.blobs.redirect_url(info.digest)
    if redirect is not None:
        # The object store serves the bytes (and any Range) itself, as distribution does.
        return web.Response(status=307, headers={
            "Location": redirect, "Docker-Content-Digest": str(info.digest),
        })
    return await _stream(request, registry, info, headers)


def _unread_range(request: web.Request, size: int) -> bool:
    """A Range this registry does not read (another unit, several ranges) is ignored and the
    whole blob served, as RFC 9110 has it and as streamed blobs are; aiohttp answered 416."""
    header = request.headers.get("Range")
    if not header:
        return False
    try:
        return parse_range(header, size) is None
    except RangeNotSatisfiable:
        return False


async def _stream(request: web.Request, registry: Registry, info: BlobInfo,
                  headers: dict[str, str]) -> web.StreamResponse:
    """Serve a blob the store can only stream (not a local file), honouring one Range."""
    try:
        selected = parse_range(request.headers.get("Range"), info.size)
    except RangeNotSatisfiable:
        return web.Response(status=416, headers={"Content-Range": f"bytes */{info.size}"})
    offset, length = (0, info.size) if selected is None else selected
    # The first chunk comes before the status line, so a store that is away answers 503.
    chunks = aiter(registry.blobs.read(info.digest, offset, length))
    first = await anext(chunks, b"")
    response = _StreamedBlob(first, chunks, headers=headers)
    if selected is not None:
        response.set_status(206)
        response.headers["Content-Range"] = f"bytes {offset}-{offset + length - 1}/{info.size}"
    response.content_length = length
    return response


async def _download(request: web.Request, download: Download, headers: dict[str, str]
                    ) -> web.StreamResponse:
    """A blob still arriving from an upstream: whole, as it comes (a Range is ignored, as
    RFC 9110 allows); its length only when the upstream announced one."""
    headers.pop("Accept-Ranges")
    if request.method == "HEAD":
        if download.size is not None:
            headers["Content-Length"] = str(download.size)
        return web.Response(headers=headers)
    chunks = aiter(download.read())
    first = await anext(chunks, b"")
    response = _StreamedBlob(first, chunks, headers=headers)
    if download.size is not None:
        response.content_length = download.size
    return response


class _StreamedBlob(web.StreamResponse):
    """A body the store streams, sent from prepare() (as FileResponse sends its file).

    Sent there, a failure mid-body is a ConnectionError inside aiohttp's own response
    step, which closes the connection as a premature disconnect, without the traceback
    a handler raising it would log.
    """

    def __init__(self, first: bytes, rest: AsyncIterator[bytes],
                 headers: dict[str, str]) -> None:
        super().__init__(headers=headers)
        self._first = first
        self._rest = rest

    async def prepare(self, request: web.BaseRequest) -> AbstractStreamWriter | None:
        if self.prepared:
            return await super().prepare(request)
        writer = await super().prepare(request)
        try:
            await self.write(self._first)
            async for chunk in self._rest:
                await self.write(chunk)
        except ConnectionError:
            raise  # the client went away
        except Exception as exc:
            # Too late for an error body: cut the connection so the client sees a short read.
            log.warning("blob stream failed after the headers were sent: %s", exc)
            raise ConnectionResetError(f"blob stream failed: {exc}") from exc
        await self.write_eof()
        return writer


async def delete_blob(request: web.Request, name: str, digest_text: str) -> web.StreamResponse:
    await request.app[REGISTRY].blobs.delete(name, parse_digest(digest_text),
                                             event_context(request))
    return web.Response(status=202)
