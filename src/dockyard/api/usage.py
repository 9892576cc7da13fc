"""GET /v2/_dockyard/usage: bytes per repository, logical and deduplicated."""

from __future__ import annotations

from dataclasses import asdict

from aiohttp import web

from dockyard.api.appkeys import REGISTRY
from dockyard.api.errors import unsupported
from dockyard.api.jsonbody import json_response
from dockyard.registry.errors import NameUnknown
from dockyard.registry.references import check_name

USAGE_PATH = "_dockyard/usage"
"""Under /v2/: repository names cannot start with "_", so this never shadows one."""


async def usage(request: web.Request) -> web.StreamResponse:
    """Bytes per repository and in total, logical and deduplicated (what deletion frees)."""
    if request.method not in ("GET", "HEAD"):
        return unsupported("method not allowed")
    repository = request.query.get("repository")
    if repository is not None:
        check_name(repository)
    report = await request.app[REGISTRY].maintenance.usage.usage(repository)
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
