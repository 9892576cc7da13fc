"""The aiohttp application: routes, middleware and what handlers reach through the app."""

from __future__ import annotations

from aiohttp import web

from dockyard.api.keys import REGISTRY, URLS
from dockyard.api.middleware import add_common_headers, registry_middleware
from dockyard.api.routes import add_routes
from dockyard.api.urls import UrlBuilder
from dockyard.registry.registry import Registry


async def healthz(request: web.Request) -> web.StreamResponse:
    return web.json_response({"status": "ok"})


def make_web_app(registry: Registry, urls: UrlBuilder) -> web.Application:
    app = web.Application(middlewares=[registry_middleware])
    app[REGISTRY] = registry
    app[URLS] = urls
    app.on_response_prepare.append(add_common_headers)
    app.router.add_get("/healthz", healthz)
    add_routes(app)

    async def close_registry(app: web.Application) -> None:
        await app[REGISTRY].close()

    app.on_cleanup.append(close_registry)
    return app
