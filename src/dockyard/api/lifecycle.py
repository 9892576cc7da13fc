"""Read-only mode in front of every write, and GET /v2/_dockyard/usage."""

from __future__ import annotations

from dataclasses import asdict

from aiohttp import web
from aiohttp.typedefs import Handler

from dockyard.api.errors import unsupported
from dockyard.api.jsonbody import json_response
from dockyard.api.keys import REGISTRY
from dockyard.registry.errors import NameUnknown
from dockyard.registry.references import check_name

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
USAGE_PATH = "_dockyard/usage"
"""Under /v2/: repository names cannot start with "_", so this never shadows one."""


@web.middleware
async def read_only_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse every write to the registry API, before its body is read, while read-only."""
    if request.method not in READ_METHODS and request.path.startswith("/v2"):
        await request.app[REGISTRY].readonly.check_write()
    return await handler(request)


async def usage(request: web.Request) -> web.StreamResponse:
    """Bytes per repository and in total, logical and deduplicated (what deletion frees)."""
    if request.method not in ("GET", "HEAD"):
        return unsupported("method not allowed")
    repository = request.query.get("repository")
    if repository is not None:
        check_name(repository)
    report = await request.app[REGISTRY].lifecycle.usage(repository)
    if repository is not None and not report.repositories:
        raise NameUnknown(detail={"name": repository})
    return json_response({
        "repositories": [asdict(item) for item in report.repositories],
        "total": {
            "blobs": report.blobs,
            "stored_bytes": report.stored_bytes,
            "logical_bytes": report.logical_bytes,
        },
    })
