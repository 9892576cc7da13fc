"""Read-only mode: every write to the registry API is refused before its body is read."""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler

from dockyard.api.appkeys import REGISTRY

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@web.middleware
async def read_only_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse every write to the registry API, before its body is read, while read-only."""
    if request.method not in READ_METHODS and request.path.startswith("/v2"):
        await request.app[REGISTRY].readonly.check_write()
    return await handler(request)
