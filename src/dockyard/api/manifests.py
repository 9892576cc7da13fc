"""GET, HEAD, PUT and DELETE of /v2/<name>/manifests/<reference>."""

from __future__ import annotations

from aiohttp import web

from dockyard.api.appkeys import REGISTRY, URLS
from dockyard.api.events import event_context, pull_context
from dockyard.api.uploads import BODY_CHUNK


async def get_manifest(request: web.Request, name: str, reference: str) -> web.StreamResponse:
    record = await request.app[REGISTRY].manifests.get(name, reference, pull_context(request))
    headers = {"Content-Type": record.media_type, "Docker-Content-Digest": record.digest}
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
