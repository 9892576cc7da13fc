"""Routing /v2/ paths by hand: repository names contain slashes, and a bad name must answer
NAME_INVALID rather than a bare 404, so one handler parses every /v2/ path."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from dockyard.api import blobs, listings, manifests, uploads
from dockyard.api.errors import registry_error_response, unsupported
from dockyard.api.jsonbody import json_response
from dockyard.registry.errors import UploadOutOfOrder
from dockyard.registry.references import check_name

Handler = Callable[[web.Request, str, str], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class Endpoint:
    pattern: re.Pattern[str]
    methods: dict[str, Handler]


def _start_upload(request: web.Request, name: str, _: str) -> Awaitable[web.StreamResponse]:
    return uploads.start_upload(request, name)


_ENDPOINTS = (
    Endpoint(re.compile(r"^(?P<name>.+)/blobs/uploads/?$"), {"POST": _start_upload}),
    Endpoint(
        re.compile(r"^(?P<name>.+)/blobs/uploads/(?P<arg>[^/]+)$"),
        {
            "GET": uploads.upload_status,
            "PATCH": uploads.patch_upload,
            "PUT": uploads.finish_upload,
            "DELETE": uploads.cancel_upload,
        },
    ),
    Endpoint(
        re.compile(r"^(?P<name>.+)/blobs/(?P<arg>[^/]+)$"),
        {"GET": blobs.get_blob, "HEAD": blobs.get_blob, "DELETE": blobs.delete_blob},
    ),
    Endpoint(
        re.compile(r"^(?P<name>.+)/manifests/(?P<arg>[^/]+)$"),
        {
            "GET": manifests.get_manifest,
            "HEAD": manifests.get_manifest,
            "PUT": manifests.put_manifest,
            "DELETE": manifests.delete_manifest,
        },
    ),
    Endpoint(re.compile(r"^(?P<name>.+)/tags/list$"), {"GET": listings.list_tags}),
    Endpoint(
        re.compile(r"^(?P<name>.+)/referrers/(?P<arg>[^/]+)$"), {"GET": listings.list_referrers}
    ),
)


async def version_check(request: web.Request) -> web.StreamResponse:
    """GET /v2/: the registry speaks the V2 API."""
    return json_response({})


async def dispatch(request: web.Request) -> web.StreamResponse:
    """Every /v2/<...> path: find the endpoint, check the name, call the handler."""
    # The raw path: a percent-encoded slash must not split a name or an id.
    tail = request.rel_url.raw_path[len("/v2/"):]
    if tail == "_catalog":
        if request.method not in ("GET", "HEAD"):
            return unsupported("method not allowed")
        return await listings.catalog(request)
    for endpoint in _ENDPOINTS:
        match = endpoint.pattern.fullmatch(tail)
        if match is None:
            continue
        handler = endpoint.methods.get(request.method)
        if handler is None:
            return unsupported(f"{request.method} is not allowed here")
        name = check_name(match.group("name"))
        argument = match.groupdict().get("arg") or ""
        try:
            return await handler(request, name, argument)
        except UploadOutOfOrder as error:
            return registry_error_response(
                error, uploads.out_of_order_headers(request, name, error)
            )
    return unsupported("unknown endpoint", status=404)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v2/", version_check)
    app.router.add_get("/v2", version_check)
    app.router.add_route("*", r"/v2/{tail:[\s\S]+}", dispatch)
