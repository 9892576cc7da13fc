"""The composition root's observability part: metrics, tracing, readiness and health checks.

Part of the composition root because it reads Config. Everything is decided here once per
process, so a feature that is off costs nothing per request: without `http.debug.prometheus.enabled`
no port is wrapped and no metric is recorded, without `tracing.enabled` the OpenTelemetry
SDK is never imported.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from dockyard.config import Config, parse_duration, split_host_port
from dockyard.metadata.revision import SCHEMA_HEAD
from dockyard.observability import metrics
from dockyard.observability.health import (
    HealthRegistry,
    PeriodicCheck,
    Readiness,
    database_check,
    file_check,
    http_check,
    storage_check,
    tcp_check,
)
from dockyard.observability.tracing import Tracer, TracingSettings, start_tracing

if TYPE_CHECKING:
    from dockyard.cache.base import Cache
    from dockyard.metadata.engine import Engines
    from dockyard.metadata.interfaces import MetadataStore
    from dockyard.registry.gc import GCReport
    from dockyard.registry.purge import PurgeReport
    from dockyard.storage.base import BlobStore

# The worker's wiring (instrumented ports, readiness route, access-log metrics) imports the
# API and metadata layers inside the functions that use it: the supervisor's debug listener
# uses this module too, and must not load the registry stack for it.

log = logging.getLogger("dockyard.observability")

T = TypeVar("T")


def metrics_enabled(config: Config) -> bool:
    return config.http.debug.prometheus.enabled


def _driver(config: Config) -> str:
    return "s3" if config.storage.s3 is not None else "filesystem"


class Observed:
    """One worker's observability: wraps the ports, then adds routes and middleware."""

    def __init__(self, config: Config) -> None:
        self._config = config
        self._metrics = metrics_enabled(config)
        self._tracer: Tracer | None = None
        self._shutdown: Callable[[], None] | None = None
        tracing = config.tracing
        if tracing.enabled:
            self._tracer, self._shutdown = start_tracing(TracingSettings(
                endpoint=tracing.endpoint, service_name=tracing.servicename,
                sampling_ratio=tracing.samplingratio, headers=tracing.headers))
        if self._metrics:
            metrics.record_build_info()
        self._readiness: Readiness | None = None

    def wrap(self, engines: Engines, store: BlobStore, metadata: MetadataStore
             ) -> tuple[BlobStore, MetadataStore]:
        """The ports the registry should use; readiness checks the unwrapped ones."""
        self._readiness = Readiness({
            "database": database_check(engines.read, SCHEMA_HEAD),
            "storage": storage_check(store),
        })
        if not self._metrics and self._tracer is None:
            return store, metadata
        from dockyard.observability.instrument import (
            InstrumentedBlobStore,
            InstrumentedMetadataStore,
        )

        return (InstrumentedBlobStore(store, _driver(self._config), self._tracer),
                InstrumentedMetadataStore(metadata, self._tracer))

    def wrap_cache(self, cache: Cache | None) -> Cache | None:
        if cache is None or not self._metrics:
            return cache
        from dockyard.observability.instrument import CountingCache

        return CountingCache(cache, "redis")

    def install(self, app: web.Application) -> None:
        from dockyard.api.health import add_readiness
        from dockyard.api.middleware.observe import tracing_middleware

        if self._readiness is not None:
            add_readiness(app, self._readiness)
        if self._tracer is not None:
            app.middlewares.insert(0, tracing_middleware(self._tracer))
        shutdown = self._shutdown
        if shutdown is not None:

            async def flush(app: web.Application) -> None:
                shutdown()  # exports the spans still queued

            app.on_cleanup.append(flush)


def access_logger(config: Config, inner: type[AbstractAccessLogger] | None
                  ) -> type[AbstractAccessLogger] | None:
    """The access log class, recording request metrics first when they are on."""
    if not metrics_enabled(config):
        return inner
    from dockyard.api.middleware.observe import metrics_access_logger

    return metrics_access_logger(inner)


def health_checks(config: Config, store: BlobStore | None) -> HealthRegistry:
    """distribution's `health` section as periodic checks for /debug/health."""
    health = config.health
    checks: list[PeriodicCheck] = []
    driver = health.storagedriver
    if driver.enabled and store is not None:
        checks.append(PeriodicCheck(
            f"storagedriver_{_driver(config)}", storage_check(store),
            parse_duration(driver.interval), driver.threshold))
    for entry in health.file:
        checks.append(PeriodicCheck(entry.file, file_check(entry.file),
                                    parse_duration(entry.interval)))
    for http in health.http:
        timeout = parse_duration(http.timeout)
        checks.append(PeriodicCheck(
            http.uri, http_check(http.uri, http.headers, http.statuscode, timeout),
            parse_duration(http.interval), http.threshold, timeout + 1))
    for tcp in health.tcp:
        host, port = split_host_port(tcp.addr)
        timeout = parse_duration(tcp.timeout)
        checks.append(PeriodicCheck(tcp.addr, tcp_check(host, port, timeout),
                                    parse_duration(tcp.interval), tcp.threshold, timeout + 1))
    return HealthRegistry(checks)


def debug_address(config: Config) -> tuple[str, int] | None:
    debug = config.http.debug
    if debug.addr is None:
        if debug.prometheus.enabled:
            log.warning("http.debug.prometheus is enabled but http.debug.addr is not set: "
                        "metrics are recorded but nothing serves them")
        return None
    return split_host_port(debug.addr)


def metrics_path(config: Config) -> str | None:
    prometheus = config.http.debug.prometheus
    return prometheus.path if prometheus.enabled else None


async def start_debug_server(config: Config, store: BlobStore | None,
                             multiprocess_dir: str | None) -> web.AppRunner | None:
    """The debug listener, if `http.debug.addr` is set; `store` feeds the storage check."""
    from dockyard.observability.debug import make_debug_app, metrics_registry
    from dockyard.observability.debug import start_debug_server as start

    address = debug_address(config)
    if address is None:
        return None
    app = make_debug_app(health_checks(config, store), metrics_path(config),
                         metrics_registry(multiprocess_dir))
    if store is not None:

        async def close_store(app: web.Application) -> None:
            await store.close()

        app.on_cleanup.append(close_store)
    return await start(app, *address)


def observed_gc(run: Callable[[], Awaitable[GCReport]]) -> Callable[[], Awaitable[GCReport]]:
    """A scheduled GC run that also counts itself, its time and what it removed."""

    async def observed() -> GCReport:
        start = time.perf_counter()
        try:
            report = await run()
        except Exception:
            metrics.gc_run(time.perf_counter() - start, ok=False)
            raise
        metrics.gc_run(time.perf_counter() - start, ok=True, deleted={
            "manifests": report.manifests_removed, "blobs": report.blobs_removed})
        return report

    return observed


def observed_purge(run: Callable[[], Awaitable[PurgeReport]]
                   ) -> Callable[[], Awaitable[PurgeReport]]:
    async def observed() -> PurgeReport:
        try:
            report = await run()
        except Exception:
            metrics.purge_run(ok=False)
            raise
        metrics.purge_run(ok=True, purged=report.sessions)
        return report

    return observed
