"""Composition for notifications: the event recorder and the delivery worker, from config."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

from aiohttp import web

from dockyard.app import reload
from dockyard.config import Config, NotificationEndpointConfig, parse_duration
from dockyard.metadata.engine import Engines
from dockyard.metadata.outbox import Outbox
from dockyard.notifications.delivery import Deliverer, DeliveryMetrics, Endpoint
from dockyard.registry.events import EventRecorder, EventSettings
from dockyard.registry.registry import Registry


def endpoint(config: NotificationEndpointConfig) -> Endpoint:
    return Endpoint(
        name=config.name,
        url=config.url,
        headers=tuple((key, value) for key, values in config.headers.items()
                      for value in values),
        timeout=parse_duration(config.timeout),
        threshold=config.threshold,
        backoff=parse_duration(config.backoff),
        max_backoff=parse_duration(config.maxbackoff),
        max_age=parse_duration(config.maxage),
        secret=config.secret.encode() if config.secret else None,
        format=config.format,
        ignored_actions=frozenset(config.ignore.actions),
        ignored_media_types=config.ignored_media_types,
    )


def endpoints(config: Config) -> list[Endpoint]:
    return [endpoint(item) for item in config.notifications.active_endpoints]


def build_outbox(config: Config, engines: Engines) -> Outbox | None:
    """None (nothing is recorded) unless an endpoint is configured."""
    return Outbox(engines) if config.notifications.active_endpoints else None


def build_recorder(config: Config, outbox: Outbox | None) -> EventRecorder:
    """Disabled (records nothing) without an outbox."""
    if outbox is None:
        return EventRecorder(None)
    notifications = config.notifications
    pulls = notifications.events.pulls
    settings = EventSettings(
        include_references=notifications.events.includereferences,
        pull_sample_rate=0.0 if pulls.disabled else pulls.samplerate,
        source_addr=f"{socket.gethostname()}:{config.http.bind_port}",
    )
    return EventRecorder(outbox, settings)


def delivery_metrics(config: Config) -> DeliveryMetrics | None:
    """Prometheus gauges and counters, only when metrics are on (else nothing is counted)."""
    if not config.http.debug.prometheus.enabled:
        return None
    from dockyard.observability import metrics

    return DeliveryMetrics(pending=metrics.notifications_pending,
                           sent=metrics.notification_sent)


def build_deliverer(config: Config, outbox: Outbox) -> Deliverer:
    return Deliverer(
        outbox, endpoints(config),
        lease=parse_duration(config.notifications.lease),
        retention=parse_duration(config.notifications.retention),
        metrics=delivery_metrics(config),
    )


def add_notifications(app: web.Application, config: Config, registry: Registry,
                      outbox: Outbox | None) -> None:
    """Every worker delivers; the per-endpoint lease keeps it to one at a time."""
    if outbox is None:
        return
    current = [build_deliverer(config, outbox)]
    registry.events.on_commit(lambda: current[0].wake())

    async def replace_endpoints(new: Config) -> None:
        """SIGHUP: deliver to the endpoints the file names now (each keeps its cursor)."""
        replacement = build_deliverer(new, outbox)
        await current[0].stop()
        current[0] = replacement
        await replacement.start()

    # Turning notifications on where they were off needs a restart: the recorder is off.
    reload.register(("notifications.endpoints",), replace_endpoints)

    async def running(_app: web.Application) -> AsyncIterator[None]:
        await current[0].start()
        await registry.events.start()
        yield
        await registry.events.stop()
        await current[0].stop()

    app.cleanup_ctx.append(running)
