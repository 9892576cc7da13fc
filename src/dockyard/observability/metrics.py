"""Every Prometheus metric Dockyard exports, named by Prometheus conventions.

Worker processes write their values to files in PROMETHEUS_MULTIPROC_DIR (set by the
supervisor before it spawns them, see `multiproc`), and the debug server sums them. With one
worker the values live in this process. Gauges therefore name how workers combine
(`multiprocess_mode`): `livesum` adds the live workers' values and drops dead ones.

Other features record through the small functions at the end (GC, purge, cache,
notifications) so they need not know prometheus-client.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable

from prometheus_client import Counter, Gauge, Histogram

from dockyard import __version__

NAMESPACE = "dockyard"

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                   2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
"""From sub-millisecond manifest reads to multi-minute layer uploads."""

BUILD_INFO = Gauge("build_info", "Dockyard version running (always 1).", ["version"],
                   namespace=NAMESPACE, multiprocess_mode="max")

HTTP_REQUESTS = Counter(
    "http_requests_total", "HTTP requests answered, by endpoint kind, method and status code.",
    ["endpoint", "method", "code"], namespace=NAMESPACE)
HTTP_DURATION = Histogram(
    "http_request_duration_seconds",
    "Time from request start to the last byte of the response, by endpoint kind and method.",
    ["endpoint", "method"], namespace=NAMESPACE, buckets=LATENCY_BUCKETS)
HTTP_RECEIVED = Counter(
    "http_received_bytes_total", "Request body bytes received, by endpoint kind.",
    ["endpoint"], namespace=NAMESPACE)
HTTP_SENT = Counter(
    "http_sent_bytes_total", "Response bytes sent (headers and body), by endpoint kind.",
    ["endpoint"], namespace=NAMESPACE)
HTTP_REJECTED = Counter(
    "http_rejected_requests_total",
    "Requests that were malformed (refused before any handler ran) or whose client went away"
    " mid-request, by reason.",
    ["reason"], namespace=NAMESPACE)
UPLOADS_IN_PROGRESS = Gauge(
    "uploads_in_progress", "Blob upload requests (POST, PATCH, PUT) now receiving data.",
    namespace=NAMESPACE, multiprocess_mode="livesum")

STORAGE_DURATION = Histogram(
    "storage_operation_duration_seconds", "Blob storage driver calls, by driver and operation.",
    ["driver", "operation"], namespace=NAMESPACE, buckets=LATENCY_BUCKETS)
STORAGE_ERRORS = Counter(
    "storage_operation_errors_total", "Blob storage driver calls that raised, by operation.",
    ["driver", "operation"], namespace=NAMESPACE)
DATABASE_DURATION = Histogram(
    "database_operation_duration_seconds", "Metadata database calls, by operation.",
    ["operation"], namespace=NAMESPACE, buckets=LATENCY_BUCKETS)
DATABASE_ERRORS = Counter(
    "database_operation_errors_total", "Metadata database calls that raised, by operation.",
    ["operation"], namespace=NAMESPACE)

CACHE_REQUESTS = Counter(
    "cache_requests_total", "Cache lookups, by cache and result (hit or miss).",
    ["cache", "result"], namespace=NAMESPACE)

GC_RUNS = Counter("gc_runs_total", "Garbage collection runs, by result (ok or error).",
                  ["result"], namespace=NAMESPACE)
GC_DURATION = Histogram("gc_duration_seconds", "Garbage collection run time.",
                        namespace=NAMESPACE, buckets=LATENCY_BUCKETS)
GC_DELETED = Counter("gc_deleted_total", "Objects garbage collection deleted, by kind.",
                     ["kind"], namespace=NAMESPACE)
PURGE_RUNS = Counter("upload_purge_runs_total",
                     "Runs of the stale upload purge, by result (ok or error).",
                     ["result"], namespace=NAMESPACE)
PURGED_UPLOADS = Counter("uploads_purged_total", "Stale upload sessions purged.",
                         namespace=NAMESPACE)

NOTIFICATIONS_PENDING = Gauge(
    "notifications_pending", "Events waiting to be delivered, by endpoint.", ["endpoint"],
    namespace=NAMESPACE, multiprocess_mode="livesum")
NOTIFICATIONS_SENT = Counter(
    "notifications_sent_total",
    "Event deliveries attempted, by endpoint and result (ok, error, dropped).",
    ["endpoint", "result"], namespace=NAMESPACE)


MIRROR_REQUESTS = Counter(
    "mirror_requests_total",
    "Pulls of mirrored content, by upstream, kind (manifest, blob) and result: hit (from the "
    "cache), miss (fetched), coalesced (waited for another request's fetch), stale (a cached "
    "tag served while the upstream could not be asked).",
    ["upstream", "kind", "result"], namespace=NAMESPACE)
MIRROR_UPSTREAM_BYTES = Counter(
    "mirror_upstream_bytes_total", "Bytes read from each upstream.", ["upstream"],
    namespace=NAMESPACE)
MIRROR_UPSTREAM_ERRORS = Counter(
    "mirror_upstream_errors_total", "Failed upstream requests, by upstream and failure.",
    ["upstream", "error"], namespace=NAMESPACE)
MIRROR_UPSTREAM_DURATION = Histogram(
    "mirror_upstream_duration_seconds",
    "Time until an upstream answered (the headers, for blobs).", ["upstream"],
    namespace=NAMESPACE, buckets=LATENCY_BUCKETS)


class MirrorMetrics:
    """The mirror's observer (registry/mirror/observer.py) as Prometheus metrics."""

    def hit(self, upstream: str, kind: str) -> None:
        MIRROR_REQUESTS.labels(upstream, kind, "hit").inc()

    def miss(self, upstream: str, kind: str) -> None:
        MIRROR_REQUESTS.labels(upstream, kind, "miss").inc()

    def coalesced(self, upstream: str, kind: str) -> None:
        MIRROR_REQUESTS.labels(upstream, kind, "coalesced").inc()

    def stale(self, upstream: str) -> None:
        MIRROR_REQUESTS.labels(upstream, "manifest", "stale").inc()

    def upstream_bytes(self, upstream: str, size: int) -> None:
        MIRROR_UPSTREAM_BYTES.labels(upstream).inc(size)

    def upstream_error(self, upstream: str, error: str) -> None:
        MIRROR_UPSTREAM_ERRORS.labels(upstream, error).inc()

    def upstream_latency(self, upstream: str, seconds: float) -> None:
        MIRROR_UPSTREAM_DURATION.labels(upstream).observe(seconds)


def record_build_info() -> None:
    BUILD_INFO.labels(__version__).set(1)


def gc_run(seconds: float, ok: bool, deleted: dict[str, int] | None = None) -> None:
    GC_RUNS.labels("ok" if ok else "error").inc()
    GC_DURATION.observe(seconds)
    for kind, count in (deleted or {}).items():
        GC_DELETED.labels(kind).inc(count)


def purge_run(ok: bool, purged: int = 0) -> None:
    PURGE_RUNS.labels("ok" if ok else "error").inc()
    if purged:
        PURGED_UPLOADS.inc(purged)


def notifications_pending(endpoint: str, count: int) -> None:
    NOTIFICATIONS_PENDING.labels(endpoint).set(count)


def notification_sent(endpoint: str, result: str) -> None:
    NOTIFICATIONS_SENT.labels(endpoint, result).inc()


# --- the per-request fast path ----------------------------------------------------------------
# prometheus-client re-checks label binding and walks the bucket list on every call; on the
# request path these two helpers bind straight to a child's values (the attributes its own
# methods use) and fall back to the public methods if a release ever renames them.


def fast_inc(child: Counter) -> Callable[[float], None]:
    """`child.inc`, without the per-call checks (amounts must be >= 0)."""
    value = getattr(child, "_value", None)
    inc = getattr(value, "inc", None)
    return inc if callable(inc) else child.inc


def fast_observe(child: Histogram) -> Callable[[float], None]:
    """`child.observe`, finding the bucket by bisection."""
    total = getattr(child, "_sum", None)
    buckets = getattr(child, "_buckets", None)
    bounds = getattr(child, "_upper_bounds", None)
    if total is None or buckets is None or bounds is None:
        return child.observe
    add_to_sum = total.inc
    adders = [bucket.inc for bucket in buckets]
    limits = list(bounds)

    def observe(amount: float) -> None:
        add_to_sum(amount)
        adders[bisect_left(limits, amount)](1)

    return observe
