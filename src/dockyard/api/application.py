"""The aiohttp application: routes, middleware and what handlers reach through the app."""

from __future__ import annotations

from collections.abc import Sequence

from aiohttp import web

from dockyard.api.appkeys import REGISTRY, RESPONSE_HEADERS, URLS
from dockyard.api.auth import AUTH, AuthState
from dockyard.api.middleware.readonly import read_only_middleware
from dockyard.api.middleware.responses import add_common_headers, registry_middleware
from dockyard.api.routes import add_routes
from dockyard.api.urls import UrlBuilder
from dockyard.registry.registry import Registry


async def healthz(request: web.Request) -> web.StreamResponse:
    return web.json_response({"status": "ok"})


def make_web_app(registry: Registry, urls: UrlBuilder, auth: AuthState | None = None,
                 headers: Sequence[tuple[str, str]] = ()) -> web.Application:
    """`headers`: (name, value) pairs added to every response."""
    app = web.Application(middlewares=[registry_middleware, read_only_middleware])
    app[REGISTRY] = registry
    app[URLS] = urls
    app[RESPONSE_HEADERS] = tuple(headers)
    if auth is not None:
        app[AUTH] = auth
        if auth.token_service is not None:
            from dockyard.api.token import add_token_routes  # brings PyJWT: only when needed

            add_token_routes(app, auth.token_path)
    app.on_response_prepare.append(add_common_headers)
    app.router.add_get("/healthz", healthz)
    add_routes(app)

    async def close_registry(app: web.Application) -> None:
        await app[REGISTRY].close()

    app.on_cleanup.append(close_registry)
    return app
