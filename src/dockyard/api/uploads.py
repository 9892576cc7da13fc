"""Upload sessions under /v2/<name>/blobs/uploads/."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

from aiohttp import StreamReader, web

from dockyard.api.appkeys import REGISTRY, URLS
from dockyard.api.auth import may_pull
from dockyard.api.events import event_context
from dockyard.api.numbers import parse_number
from dockyard.registry.errors import DigestInvalid, UploadOutOfOrder
from dockyard.registry.references import parse_digest
from dockyard.registry.uploads import Chunk, UploadState

BODY_CHUNK = 1 << 20
_CONTENT_RANGE = re.compile(r"^(?:bytes[ =])?([0-9]+)-([0-9]+)(?:/(?:[0-9]+|\*))?$")


def _range_header(size: int) -> str:
    return f"0-{max(size - 1, 0)}"


def _upload_path(name: str, upload_id: str) -> str:
    return f"/v2/{name}/blobs/uploads/{upload_id}"


def _session_headers(request: web.Request, state: UploadState) -> dict[str, str]:
    return {
        "Location": request.app[URLS].build(request, _upload_path(state.repository, state.id)),
        "Range": _range_header(state.size),
        "Docker-Upload-UUID": state.id,
        "Blob-Upload-Session-ID": state.id,
    }


def _session_response(request: web.Request, state: UploadState, status: int) -> web.Response:
    return web.Response(status=status, headers=_session_headers(request, state))


def _created(request: web.Request, name: str, digest: str) -> web.Response:
    location = request.app[URLS].build(request, f"/v2/{name}/blobs/{digest}")
    return web.Response(
        status=201, headers={"Location": location, "Docker-Content-Digest": digest}
    )


async def _received(content: StreamReader) -> AsyncIterator[bytes]:
    """The body in the pieces aiohttp parsed it into.

    Re-chunking it (`iter_chunked`) joined those pieces into new objects: a copy of every byte
    on the event loop and fresh pages to fault in, about an eighth of an upload's CPU.
    """
    buffer_up_to = getattr(content, "set_read_chunk_size", None)  # aiohttp >= 3.14
    if buffer_up_to is not None:
        buffer_up_to(BODY_CHUNK)  # read ahead up to 2 x BODY_CHUNK, as iter_chunked would
    async for data, _end_of_http_chunk in content.iter_chunks():
        if data:
            yield data


def _chunk(request: web.Request) -> Chunk:
    body = _received(request.content)
    header = request.headers.get("Content-Range")
    if header is None:
        return Chunk(body, None, request.content_length)
    match = _CONTENT_RANGE.match(header.strip())
    start = end = None
    if match is not None:
        start, end = parse_number(match.group(1)), parse_number(match.group(2))
    if start is None or end is None:
        return Chunk(body, None, request.content_length, range_malformed=True)
    return Chunk(body, (start, end), request.content_length)


def _has_body(request: web.Request) -> bool:
    return request.can_read_body and request.content_length != 0


def _digests(request: web.Request) -> list[str]:
    values = request.query.getall("digest", [])
    if not values:
        raise DigestInvalid("the digest query parameter is required")
    return values


async def start_upload(request: web.Request, name: str) -> web.StreamResponse:
    registry = request.app[REGISTRY]
    mount = request.query.get("mount")
    source = request.query.get("from")
    if mount and source and may_pull(request, source):
        digest = parse_digest(mount)
        if await registry.blobs.mount(name, digest, source, event_context(request)):
            return _created(request, name, str(digest))
    if "digest" in request.query:
        digest = parse_digest(_digests(request)[0])
        stored = await registry.uploads.upload_whole(name, digest, _chunk(request),
                                                     event_context(request))
        return _created(request, name, str(stored))
    state = await registry.uploads.start(name)
    return _session_response(request, state, 202)


async def upload_status(request: web.Request, name: str, upload_id: str) -> web.StreamResponse:
    state = await request.app[REGISTRY].uploads.status(name, upload_id)
    return _session_response(request, state, 204)


async def patch_upload(request: web.Request, name: str, upload_id: str) -> web.StreamResponse:
    state = await request.app[REGISTRY].uploads.append(name, upload_id, _chunk(request))
    return _session_response(request, state, 202)


async def finish_upload(request: web.Request, name: str, upload_id: str) -> web.StreamResponse:
    digests = [parse_digest(text) for text in _digests(request)]
    last_chunk = _chunk(request) if _has_body(request) else None
    stored = await request.app[REGISTRY].uploads.complete(name, upload_id, digests, last_chunk,
                                                          event_context(request))
    return _created(request, name, str(stored))


async def cancel_upload(request: web.Request, name: str, upload_id: str) -> web.StreamResponse:
    await request.app[REGISTRY].uploads.cancel(name, upload_id)
    return web.Response(status=204)


def out_of_order_headers(request: web.Request, name: str, error: UploadOutOfOrder
                         ) -> dict[str, str]:
    return _session_headers(request, UploadState(error.upload_id, name, error.size))
