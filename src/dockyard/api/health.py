"""GET /readyz: may a load balancer send this worker traffic (database, schema, storage)?

/healthz (alive) answers without touching any backend, so a restart loop is never triggered
by a database outage; /readyz is the one that turns 503 when a backend is away.
"""

from __future__ import annotations

from aiohttp import web

from dockyard.api.routes import ENDPOINT
from dockyard.observability.health import Readiness

READINESS = web.AppKey("readiness", Readiness)


async def readyz(request: web.Request) -> web.StreamResponse:
    request[ENDPOINT] = "health"
    status = await request.app[READINESS].status()
    failing = {name: error for name, error in status.items() if error is not None}
    body = {"status": "ok" if not failing else "unavailable",
            "checks": {name: error or "ok" for name, error in status.items()}}
    return web.json_response(body, status=503 if failing else 200)


def add_readiness(app: web.Application, readiness: Readiness) -> None:
    app[READINESS] = readiness
    app.router.add_get("/readyz", readyz)
