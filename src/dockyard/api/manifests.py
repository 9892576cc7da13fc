"""GET, HEAD, PUT and DELETE of /v2/<name>/manifests/<reference>."""

from __future__ import annotations

from aiohttp import web

from dockyard.api.appkeys import REGISTRY, URLS
from dockyard.api.events import event_context, pull_context
from dockyard.api.uploads import BODY_CHUNK
from dockyard.oci.mediatypes import MANIFESTS, is_json_type, is_valid_media_type

# What a manifest stored before media types were checked is served as instead of its own.
_FALLBACK_TYPE = "application/octet-stream"


def _served_type(media_type: str) -> str:
    """The stored media type, unless it could split the header or render in a browser."""
    if media_type in MANIFESTS or (is_valid_media_type(media_type) and is_json_type(media_type)):
        return media_type
    return _FALLBACK_TYPE


async def get_manifest(request: web.Request, name: str, reference: str) -> web.StreamResponse:
    record = await request.app[REGISTRY].manifests.get(name, reference, pull_context(request))
    headers = {"Content-Type": _served_type(record.media_type),
               "Docker-Content-Digest": record.digest}
    if request.method == "HEAD":
        headers["Content-Length"] = str(len(record.content))
        return web.Response(headers=headers)
    return web.Response(body=record.content, headers=headers)


async def put_manifest(request: web.Request, name: str, reference: str) -> web.StreamResponse:
    pushed = await request.app[REGISTRY].manifests.put(
        name,
        reference,
        request.content.iter_chunked(BODY_CHUNK),
        request.headers.get("Content-Type"),
        request.query.getall("tag", []),
        event_context(request),
    )
    digest = str(pushed.digest)
    headers = {
        "Location": request.app[URLS].build(request, f"/v2/{name}/manifests/{digest}"),
        "Docker-Content-Digest": digest,
    }
    if pushed.subject is not None:
        headers["OCI-Subject"] = str(pushed.subject)
    return web.Response(status=201, headers=headers)


async def delete_manifest(request: web.Request, name: str, reference: str) -> web.StreamResponse:
    await request.app[REGISTRY].manifests.delete(name, reference, event_context(request))
    return web.Response(status=202)
