"""The debug listener (`http.debug.addr`): Prometheus metrics and /debug/health.

One process serves it: the supervisor when there are several workers (it reads the workers'
metric files, see `multiproc`), else the only worker. It is bound without SO_REUSEPORT, so a
second Dockyard on the same debug address fails at start instead of splitting scrapes.
"""

from __future__ import annotations

import logging

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from dockyard.observability.health import HealthRegistry

log = logging.getLogger("dockyard.debug")

HEALTH = web.AppKey("health", HealthRegistry)


def metrics_registry(multiprocess_dir: str | None) -> CollectorRegistry:
    """The workers' summed metrics, or this process's own."""
    if multiprocess_dir is None:
        return REGISTRY
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=multiprocess_dir)  # type: ignore[no-untyped-call]
    return registry


def make_debug_app(health: HealthRegistry, metrics_path: str | None,
                   registry: CollectorRegistry) -> web.Application:
    app = web.Application()
    app[HEALTH] = health

    async def debug_health(request: web.Request) -> web.StreamResponse:
        failures = request.app[HEALTH].failures
        return web.json_response(failures, status=503 if failures else 200)

    async def metrics(request: web.Request) -> web.StreamResponse:
        body = generate_latest(registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    app.router.add_get("/debug/health", debug_health)
    if metrics_path is not None:
        app.router.add_get(metrics_path, metrics)

    async def start_checks(app: web.Application) -> None:
        app[HEALTH].start()

    async def stop_checks(app: web.Application) -> None:
        await app[HEALTH].stop()

    app.on_startup.append(start_checks)
    app.on_cleanup.append(stop_checks)
    return app


async def start_debug_server(app: web.Application, host: str, port: int) -> web.AppRunner:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port, reuse_address=True).start()
    log.info("debug server listening on %s:%s", host, port)
    return runner
