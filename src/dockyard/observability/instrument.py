"""Time and count every call into the storage and metadata ports, without touching them.

A proxy rather than a subclass per driver: any public method (including ones added later)
is observed as `operation`, whether it returns a coroutine or an async iterator (timed until
the stream ends). Wrappers are built on first use and cached on the proxy, so a call costs
one extra Python frame plus a histogram observation. When tracing is on, each call is also
a span, a child of the request's span.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar, cast

from prometheus_client import Counter, Gauge, Histogram

from dockyard.cache.base import Cache, Lookup
from dockyard.observability import metrics
from dockyard.observability.tracing import Tracer

T = TypeVar("T")

_PASS_THROUGH = frozenset({"local_path", "close"})
"""No I/O worth a series (a path computed in memory), or once-per-process."""


class _Observer:
    """What one port's calls feed: a histogram and an error counter, children cached."""

    def __init__(self, duration: Histogram, errors: Counter, labels: tuple[str, ...],
                 span_prefix: str, tracer: Tracer | None,
                 in_progress: dict[str, Gauge] | None = None) -> None:
        self.in_progress = in_progress or {}
        self._duration = duration
        self._errors = errors
        self._labels = labels
        self._span_prefix = span_prefix
        self.tracer = tracer

    def timer(self, operation: str) -> Callable[[float, bool], None]:
        labels = (*self._labels, operation)
        observe = metrics.fast_observe(self._duration.labels(*labels))
        errors = self._errors.labels(*labels)

        def done(seconds: float, failed: bool) -> None:
            observe(seconds)
            if failed:
                errors.inc()

        return done

    def span_name(self, operation: str) -> str:
        return f"{self._span_prefix}.{operation}"


async def _timed(result: Awaitable[T], done: Callable[[float, bool], None]) -> T:
    start = time.perf_counter()
    try:
        value = await result
    except BaseException:
        done(time.perf_counter() - start, True)
        raise
    done(time.perf_counter() - start, False)
    return value


async def _timed_stream(stream: AsyncIterator[T], done: Callable[[float, bool], None]
                        ) -> AsyncIterator[T]:
    start = time.perf_counter()
    try:
        async for item in stream:
            yield item
    except BaseException:
        done(time.perf_counter() - start, True)
        raise
    done(time.perf_counter() - start, False)


async def _counted(result: Awaitable[T], gauge: Gauge) -> T:
    gauge.inc()
    try:
        return await result
    finally:
        gauge.dec()


async def _traced(result: Awaitable[T], tracer: Tracer, name: str) -> T:
    with tracer.start_as_current_span(name):
        return await result


class _Proxy:
    """Forwards attribute access to the target; public methods come back observed."""

    def __init__(self, target: object, observer: _Observer) -> None:
        self._target = target
        self._observer = observer

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._target, name)
        if name.startswith("_") or name in _PASS_THROUGH or not callable(attribute):
            return attribute
        wrapped = self._wrap(name, attribute)
        setattr(self, name, wrapped)  # later lookups skip __getattr__
        return wrapped

    def _wrap(self, name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        done = self._observer.timer(name)
        tracer = self._observer.tracer
        span_name = self._observer.span_name(name)
        gauge = self._observer.in_progress.get(name)

        def call(*args: Any, **kwargs: Any) -> Any:
            result = method(*args, **kwargs)
            if hasattr(result, "__await__"):
                timed = _timed(result, done)
                if gauge is not None:
                    timed = _counted(timed, gauge)
                return timed if tracer is None else _traced(timed, tracer, span_name)
            if hasattr(result, "__anext__"):
                return _timed_stream(result, done)
            return result

        return call


def instrument_blob_store(store: T, driver: str, tracer: Tracer | None = None) -> T:
    observer = _Observer(metrics.STORAGE_DURATION, metrics.STORAGE_ERRORS, (driver,),
                         "storage", tracer,
                         {"append_upload": metrics.UPLOADS_IN_PROGRESS,  # receiving data
                          "append_and_commit": metrics.UPLOADS_IN_PROGRESS})
    return cast(T, _Proxy(store, observer))


def instrument_metadata(store: T, tracer: Tracer | None = None) -> T:
    observer = _Observer(metrics.DATABASE_DURATION, metrics.DATABASE_ERRORS, (), "db", tracer)
    return cast(T, _Proxy(store, observer))


class CountingCache(Cache):
    """Counts hits and misses of the shared cache as `dockyard_cache_requests_total`."""

    def __init__(self, inner: Cache, name: str) -> None:
        self._inner = inner
        self._hit = metrics.CACHE_REQUESTS.labels(name, "hit")
        self._miss = metrics.CACHE_REQUESTS.labels(name, "miss")

    async def get(self, scope: str, key: str) -> Lookup:
        found = await self._inner.get(scope, key)
        (self._miss if found.value is None else self._hit).inc()
        return found

    async def fill(self, scope: str, generation: str, key: str, value: bytes) -> None:
        await self._inner.fill(scope, generation, key, value)

    async def invalidate(self, scope: str) -> None:
        await self._inner.invalidate(scope)

    async def invalidate_all(self) -> None:
        await self._inner.invalidate_all()

    async def close(self) -> None:
        await self._inner.close()
