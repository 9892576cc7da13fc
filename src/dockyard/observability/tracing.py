"""OpenTelemetry tracing, exported over OTLP/HTTP: off by default, and free when off.

Nothing here imports opentelemetry until `start_tracing` is called, so a server without
tracing neither loads the SDK nor pays a branch per call beyond `tracer is None`. The SDK is
an optional extra (`pip install dockyard[tracing]`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

log = logging.getLogger("dockyard.tracing")


class Tracer(Protocol):
    """The part of opentelemetry.trace.Tracer Dockyard uses."""

    def start_as_current_span(self, name: str, context: Any = None, kind: Any = ...,
                              attributes: Any = None) -> AbstractContextManager[Any]: ...


@dataclass(frozen=True)
class TracingSettings:
    endpoint: str
    service_name: str = "dockyard"
    sampling_ratio: float = 1.0
    headers: Mapping[str, str] = field(default_factory=dict)


class TracingUnavailable(RuntimeError):
    """Tracing is configured but the OpenTelemetry SDK is not installed."""


def start_tracing(settings: TracingSettings) -> tuple[Tracer, Callable[[], None]]:
    """A tracer exporting in batches from a background thread, and its shutdown (flushes)."""
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
    except ImportError as exc:
        raise TracingUnavailable(
            "tracing.enabled needs the OpenTelemetry SDK: pip install 'dockyard[tracing]'"
        ) from exc
    provider = TracerProvider(
        resource=Resource.create({"service.name": settings.service_name}),
        sampler=ParentBased(TraceIdRatioBased(settings.sampling_ratio)),
    )
    exporter = OTLPSpanExporter(endpoint=settings.endpoint, headers=dict(settings.headers))
    provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=1000))
    log.info("tracing: exporting spans to %s", settings.endpoint)
    tracer: Tracer = provider.get_tracer("dockyard")
    return tracer, provider.shutdown
