"""GET, HEAD and DELETE of /v2/<name>/blobs/<digest>."""

from __future__ import annotations

from aiohttp import web

from dockyard.api.events import event_context, pull_context
from dockyard.api.keys import REGISTRY
from dockyard.api.ranges import RangeNotSatisfiable, parse_range
from dockyard.registry.blobs import BlobInfo
from dockyard.registry.references import parse_digest
from dockyard.registry.registry import Registry

BLOB_CONTENT_TYPE = "application/octet-stream"
# uvloop has no loop.sendfile, so aiohttp copies files through Python: in large pieces, each
# read costs one thread hop and each write one syscall.
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
    if request.method == "HEAD":
        headers["Content-Length"] = str(info.size)
        return web.Response(headers=headers)
    if info.local_path is not None:
        return web.FileResponse(info.local_path, chunk_size=FILE_CHUNK, headers=headers)
    redirect = await registry.blobs.redirect_url(info.digest)
    if redirect is not None:
        # The object store serves the bytes (and any Range) itself, as distribution does.
        return web.Response(status=307, headers={
            "Location": redirect, "Docker-Content-Digest": str(info.digest),
        })
    return await _stream(request, registry, info, headers)


async def _stream(request: web.Request, registry: Registry, info: BlobInfo,
                  headers: dict[str, str]) -> web.StreamResponse:
    """Serve a blob the store can only stream (not a local file), honouring one Range."""
    try:
        selected = parse_range(request.headers.get("Range"), info.size)
    except RangeNotSatisfiable:
        return web.Response(status=416, headers={"Content-Range": f"bytes */{info.size}"})
    response = web.StreamResponse(headers=headers)
    offset, length = 0, info.size
    if selected is not None:
        offset, length = selected
        response.set_status(206)
        response.headers["Content-Range"] = f"bytes {offset}-{offset + length - 1}/{info.size}"
    response.content_length = length
    # The first chunk comes before the status line, so a store that is away answers 503.
    chunks = aiter(registry.blobs.read(info.digest, offset, length))
    first = await anext(chunks, b"")
    await response.prepare(request)
    try:
        await response.write(first)
        async for chunk in chunks:
            await response.write(chunk)
    except (ConnectionError, TimeoutError):
        raise
    except Exception as exc:
        # Too late for an error body: cut the connection so the client sees a short read.
        raise ConnectionResetError(f"blob stream failed: {exc}") from exc
    await response.write_eof()
    return response


async def delete_blob(request: web.Request, name: str, digest_text: str) -> web.StreamResponse:
    await request.app[REGISTRY].blobs.delete(name, parse_digest(digest_text),
                                             event_context(request))
    return web.Response(status=202)
