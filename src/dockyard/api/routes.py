"""Routing /v2/ paths by hand: repository names contain slashes, and a bad name must answer
NAME_INVALID rather than a bare 404, so one handler parses every /v2/ path."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from dockyard.api import auth, blobs, listings, manifests, uploads, usage
from dockyard.api.appkeys import REGISTRY
from dockyard.api.errors import registry_error_response, unsupported
from dockyard.api.jsonbody import json_response
from dockyard.auth.access import CATALOG_SCOPE, repository_scope
from dockyard.registry.errors import UploadOutOfOrder
from dockyard.registry.references import check_name

Handler = Callable[[web.Request, str, str], Awaitable[web.StreamResponse]]

ENDPOINT = "endpoint"
"""request[ENDPOINT]: the endpoint kind ("manifests", "blobs", ...) for metrics and traces."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    pattern: re.Pattern[str]
    methods: dict[str, Handler]
    upload: bool = False
    """Upload sessions: every method needs the push right."""
    kind: str = "other"
    """The endpoint's name in metrics and traces (never the raw path: cardinality)."""


def _start_upload(request: web.Request, name: str, _: str) -> Awaitable[web.StreamResponse]:
    return uploads.start_upload(request, name)


_ENDPOINTS = (
    Endpoint(re.compile(r"^(?P<name>.+)/blobs/uploads/?$"), {"POST": _start_upload}, True,
             kind="uploads"),
    Endpoint(
        re.compile(r"^(?P<name>.+)/blobs/uploads/(?P<arg>[^/]+)$"),
        {
            "GET": uploads.upload_status,
            "PATCH": uploads.patch_upload,
            "PUT": uploads.finish_upload,
            "DELETE": uploads.cancel_upload,
        },
        True,
        kind="uploads",
    ),
    Endpoint(
        re.compile(r"^(?P<name>.+)/blobs/(?P<arg>[^/]+)$"),
        {"GET": blobs.get_blob, "HEAD": blobs.get_blob, "DELETE": blobs.delete_blob},
        kind="blobs",
    ),
    Endpoint(
        re.compile(r"^(?P<name>.+)/manifests/(?P<arg>[^/]+)$"),
        {
            "GET": manifests.get_manifest,
            "HEAD": manifests.get_manifest,
            "PUT": manifests.put_manifest,
            "DELETE": manifests.delete_manifest,
        },
        kind="manifests",
    ),
    Endpoint(re.compile(r"^(?P<name>.+)/tags/list$"), {"GET": listings.list_tags},
             kind="tags"),
    Endpoint(
        re.compile(r"^(?P<name>.+)/referrers/(?P<arg>[^/]+)$"), {"GET": listings.list_referrers},
        kind="referrers",
    ),
)


async def version_check(request: web.Request) -> web.StreamResponse:
    """GET /v2/: the registry speaks the V2 API (to authenticated callers, when auth is on)."""
    request[ENDPOINT] = "base"
    refused = await auth.check(request, None)
    if refused is not None:
        return refused
    return json_response({})


async def dispatch(request: web.Request) -> web.StreamResponse:
    """Every /v2/<...> path: find the endpoint, check the name, call the handler."""
    # The raw path: a percent-encoded slash must not split a name or an id.
    tail = request.rel_url.raw_path[len("/v2/"):]
    if tail == "_catalog":
        request[ENDPOINT] = "catalog"
        if request.method not in ("GET", "HEAD"):
            return unsupported("method not allowed")
        refused = await auth.check(request, CATALOG_SCOPE)
        if refused is not None:
            return refused
        return await listings.catalog(request)
    if tail == usage.USAGE_PATH:
        refused = await auth.check(request, CATALOG_SCOPE)
        if refused is not None:
            return refused
        return await usage.usage(request)
    for endpoint in _ENDPOINTS:
        match = endpoint.pattern.fullmatch(tail)
        if match is None:
            continue
        request[ENDPOINT] = endpoint.kind
        handler = endpoint.methods.get(request.method)
        if handler is None:
            return unsupported(f"{request.method} is not allowed here")
        registry = request.app[REGISTRY]
        name = check_name(registry.routes.local_name(match.group("name"),
                                                     request.query.get("ns")))
        action = auth.required_action(request.method, endpoint.upload)
        related = auth.mount_source(request) if endpoint.upload else ()
        refused = await auth.check(request, repository_scope(name, action), related)
        if refused is not None:
            return refused
        if endpoint.upload or (endpoint.kind == "manifests" and request.method == "PUT"):
            registry.refuse_push(name)
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
