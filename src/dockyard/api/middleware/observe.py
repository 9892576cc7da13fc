"""Per-request metrics and trace spans.

Metrics ride on aiohttp's access-log hook rather than a middleware: aiohttp calls it once the
last byte of the response is written (so blob downloads are timed whole), it costs no extra
coroutine frame, and it runs whether or not the access log itself is on. The labelled
children are cached per (endpoint, method, status), so a request costs a dict lookup and a
few increments.
"""

from __future__ import annotations

from collections.abc import Callable
from time import perf_counter
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.typedefs import Handler, Middleware

from dockyard.api.middleware.responses import STARTED
from dockyard.api.routes import ENDPOINT
from dockyard.observability import metrics
from dockyard.observability.tracing import Tracer

_OTHER = "other"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
"""Any other method is counted as OTHER: methods come from clients (cardinality)."""

_Add = Callable[[float], None]
_Series = tuple[_Add, _Add, _Add, _Add]
"""Request count, duration, bytes received, bytes sent."""
_series: dict[tuple[str, str, int], _Series] = {}


def _children(endpoint: str, method: str, status: int) -> _Series:
    if method not in _METHODS:
        method = "OTHER"
    key = (endpoint, method, status)
    found = _series.get(key)
    if found is None:
        found = _series[key] = (
            metrics.fast_inc(metrics.HTTP_REQUESTS.labels(endpoint, method, str(status))),
            metrics.fast_observe(metrics.HTTP_DURATION.labels(endpoint, method)),
            metrics.fast_inc(metrics.HTTP_RECEIVED.labels(endpoint)),
            metrics.fast_inc(metrics.HTTP_SENT.labels(endpoint)),
        )
    return found


def record(request: web.BaseRequest, response: web.StreamResponse, seconds: float) -> None:
    """`seconds` is aiohttp's whole-millisecond figure: the middleware's start is preferred."""
    started = request.get(STARTED)
    if started is not None:
        seconds = perf_counter() - started
    count, observe, received, sent = _children(
        request.get(ENDPOINT, _OTHER), request.method, response.status)
    count(1)
    observe(seconds)
    body = request.content.total_bytes
    if body:
        received(body)
    sent(response.body_length)


def metrics_access_logger(inner: type[AbstractAccessLogger] | None
                          ) -> type[AbstractAccessLogger]:
    """An access logger class that records metrics, then logs through `inner` if given."""

    class MetricsAccessLogger(AbstractAccessLogger):
        def __init__(self, logger: Any, log_format: str) -> None:
            super().__init__(logger, log_format)
            self._inner = inner(logger, log_format) if inner is not None else None

        def log(self, request: web.BaseRequest, response: web.StreamResponse,
                time: float) -> None:
            record(request, response, time)
            if self._inner is not None:
                self._inner.log(request, response, time)

    return MetricsAccessLogger


def tracing_middleware(tracer: Tracer) -> Middleware:
    """A server span per request, continuing the caller's trace (W3C traceparent)."""
    from opentelemetry import propagate, trace

    server = trace.SpanKind.SERVER

    @web.middleware
    async def traced(request: web.Request, handler: Handler) -> web.StreamResponse:
        context = propagate.extract(request.headers)
        with tracer.start_as_current_span(
            request.method, context=context, kind=server,
            attributes={"http.request.method": request.method, "url.path": request.path},
        ) as span:
            response = await handler(request)
            endpoint = request.get(ENDPOINT, _OTHER)
            span.update_name(f"{request.method} {endpoint}")
            span.set_attribute("http.route", endpoint)
            span.set_attribute("http.response.status_code", response.status)
            if response.status >= 500:
                span.set_status(trace.StatusCode.ERROR)
            return response

    return traced
