"""GET, HEAD and DELETE of /v2/<name>/blobs/<digest>."""

from __future__ import annotations

from aiohttp import web

from dockyard.api.keys import REGISTRY
from dockyard.api.ranges import RangeNotSatisfiable, parse_range
from dockyard.registry.blobs import BlobInfo
from dockyard.registry.references import parse_digest
from dockyard.registry.registry import Registry

BLOB_CONTENT_TYPE = "application/octet-stream"


def _headers(info: BlobInfo) -> dict[str, str]:
    return {
        "Docker-Content-Digest": str(info.digest),
        "Accept-Ranges": "bytes",
        "Content-Type": BLOB_CONTENT_TYPE,
        "Cache-Control": "max-age=31536000",
    }


async def get_blob(request: web.Request, name: str, digest_text: str) -> web.StreamResponse:
    registry = request.app[REGISTRY]
    info = await registry.blobs.stat(name, parse_digest(digest_text))
    headers = _headers(info)
    if request.method == "HEAD":
        headers["Content-Length"] = str(info.size)
        return web.Response(headers=headers)
    if info.local_path is not None:
        return web.FileResponse(info.local_path, headers=headers)
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
    await response.prepare(request)
    async for chunk in registry.blobs.read(info.digest, offset, length):
        await response.write(chunk)
    await response.write_eof()
    return response


async def delete_blob(request: web.Request, name: str, digest_text: str) -> web.StreamResponse:
    await request.app[REGISTRY].blobs.delete(name, parse_digest(digest_text))
    return web.Response(status=202)
