"""Delivering recorded events to webhook endpoints: at least once, in commit order.

Every worker process runs a deliverer, and a lease row per endpoint lets one of them (on one
node) deliver to that endpoint at a time; if it dies, another takes over when the lease
expires. The cursor moves only after the receiver answered 2xx/3xx, so a crash between the
POST and the cursor update sends the batch again: receivers drop repeats by event `id`.
A failing endpoint is retried with exponential backoff and never blocks the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp

from dockyard.metadata.outbox import EndpointState, Outbox, StoredEvent

log = logging.getLogger("dockyard.notifications")

ENVELOPE_MEDIA_TYPE = "application/vnd.docker.distribution.events.v1+json"
CLOUDEVENTS_BATCH_MEDIA_TYPE = "application/cloudevents-batch+json"
SIGNATURE_HEADER = "X-Dockyard-Signature"
USER_AGENT = "dockyard-notifications/1"
BATCH_SIZE = 100
POLL_INTERVAL = 0.2
PRUNE_INTERVAL = 60.0
ERROR_PAUSE = 1.0
GAUGE_INTERVAL = 5.0


@dataclass(frozen=True, slots=True)
class DeliveryMetrics:
    """Where delivery reports to (Prometheus, when enabled); kept abstract here."""

    pending: Callable[[str, int], None]
    """(endpoint, events waiting); only the lease holder reports a non-zero value."""
    sent: Callable[[str, str], None]
    """(endpoint, result): one call per event: ok, error or dropped (dead-lettered)."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    name: str
    url: str
    headers: tuple[tuple[str, str], ...] = ()
    timeout: float = 5.0
    threshold: int = 10
    backoff: float = 1.0
    max_backoff: float = 300.0
    max_age: float = 86400.0
    secret: bytes | None = None
    format: str = "distribution"
    ignored_actions: frozenset[str] = frozenset()
    ignored_media_types: frozenset[str] = frozenset()

    def wants(self, event: StoredEvent) -> bool:
        if event.action in self.ignored_actions:
            return False
        return event.media_type is None or event.media_type not in self.ignored_media_types

    def delay(self, failures: int) -> float:
        """Seconds before the next try after `failures` consecutive failures."""
        exponent = min(max(failures - 1, 0), 30)
        return min(self.max_backoff, self.backoff * float(2**exponent))


def signature(secret: bytes, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def _cloudevent(payload: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads(payload)
    source = event.get("source", {}).get("addr") or "dockyard"
    return {
        "specversion": "1.0",
        "id": event["id"],
        "source": f"dockyard://{source}",
        "type": f"io.dockyard.registry.{event['action']}",
        "time": event["timestamp"],
        "subject": event.get("target", {}).get("repository", ""),
        "datacontenttype": "application/json",
        "data": event,
    }


def render(endpoint: Endpoint, events: Sequence[StoredEvent]) -> tuple[bytes, str]:
    """The body and its media type. Stored payloads are spliced in, not parsed again."""
    if endpoint.format == "cloudevents":
        body = json.dumps([_cloudevent(e.payload) for e in events], separators=(",", ":"))
        return body.encode(), CLOUDEVENTS_BATCH_MEDIA_TYPE
    joined = ",".join(event.payload for event in events)
    return f'{{"events":[{joined}]}}'.encode(), ENVELOPE_MEDIA_TYPE


def default_holder() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Deliverer:
    """One task per endpoint in this process, each delivering only while it holds the lease."""

    def __init__(self, outbox: Outbox, endpoints: Sequence[Endpoint], *, lease: float = 15.0,
                 retention: float = 3600.0, holder: str | None = None,
                 batch_size: int = BATCH_SIZE, poll_interval: float = POLL_INTERVAL,
                 metrics: DeliveryMetrics | None = None) -> None:
        self._outbox = outbox
        self._endpoints = list(endpoints)
        self._lease = lease
        self._retention = retention
        self._holder = holder or default_holder()
        self._batch_size = batch_size
        self._poll = poll_interval
        self._wakes = {endpoint.name: asyncio.Event() for endpoint in self._endpoints}
        self._tasks: list[asyncio.Task[None]] = []
        self._session: aiohttp.ClientSession | None = None
        self._metrics = metrics
        self._gauged: dict[str, float] = {}

    async def start(self) -> None:
        """Make sure every endpoint has its cursor before this process serves a request."""
        if not self._endpoints:
            return
        await self._outbox.ensure_endpoints([endpoint.name for endpoint in self._endpoints])
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit_per_host=2),
            headers={"User-Agent": USER_AGENT},
        )
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._serve(endpoint)) for endpoint in self._endpoints]
        self._tasks.append(loop.create_task(self._prune_forever()))

    def wake(self) -> None:
        """Events committed in this process: look now instead of at the next poll."""
        for event in self._wakes.values():
            event.set()

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        for endpoint in self._endpoints:
            try:
                await self._outbox.release_lease(endpoint.name, self._holder)
            except Exception:
                log.warning("could not release the lease on %s", endpoint.name, exc_info=True)
        if self._session is not None:
            await self._session.close()
            self._session = None

    # -- the loop -----------------------------------------------------------------------------

    def _lease_for(self, endpoint: Endpoint) -> float:
        """Long enough that a POST in flight never outlives the lease it started under."""
        return max(self._lease, 2 * endpoint.timeout + 1.0)

    async def _serve(self, endpoint: Endpoint) -> None:
        lease = self._lease_for(endpoint)
        wake = self._wakes[endpoint.name]
        while True:
            try:
                wake.clear()
                state = await self._outbox.take_lease(endpoint.name, self._holder, lease)
                await self._gauge(endpoint, state)
                if state is None:
                    await asyncio.sleep(min(lease / 3, 1.0))
                    continue
                wait = self._backoff_left(state)
                if wait > 0:
                    await asyncio.sleep(min(wait, lease / 3))
                    continue
                if not await self._attempt(endpoint, state):
                    await self._idle(endpoint, state, lease)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("delivery to %s failed unexpectedly", endpoint.name)
                await asyncio.sleep(ERROR_PAUSE)

    async def _idle(self, endpoint: Endpoint, state: EndpointState, lease: float) -> None:
        """Wait for work with reads only; the lease is renewed (a write) every lease/3."""
        wake = self._wakes[endpoint.name]
        renew_at = time.monotonic() + lease / 3
        while time.monotonic() < renew_at:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), self._poll)
            wake.clear()
            if await self._outbox.has_work(endpoint.name, state.last_seq):
                return

    async def _gauge(self, endpoint: Endpoint, state: EndpointState | None) -> None:
        """Report the backlog now and then; a worker without the lease reports zero, so the
        workers' sum is the holder's count."""
        if self._metrics is None:
            return
        last = self._gauged.get(endpoint.name)
        if state is None:
            if last is not None:
                self._metrics.pending(endpoint.name, 0)
                self._gauged.pop(endpoint.name)
            return
        if last is not None and time.monotonic() - last < GAUGE_INTERVAL:
            return
        self._gauged[endpoint.name] = time.monotonic()
        count = await self._outbox.pending_count(
            state.last_seq, endpoint.ignored_actions, endpoint.ignored_media_types)
        self._metrics.pending(endpoint.name, count)

    def _count(self, endpoint: Endpoint, result: str, events: int) -> None:
        if self._metrics is not None:
            for _ in range(events):
                self._metrics.sent(endpoint.name, result)

    @staticmethod
    def _backoff_left(state: EndpointState) -> float:
        if state.next_attempt_at is None:
            return 0.0
        return (state.next_attempt_at - datetime.now(UTC)).total_seconds()

    async def _attempt(self, endpoint: Endpoint, state: EndpointState) -> bool:
        """One batch: replayed dead letters first, then the queue. False: nothing to send."""
        replays = await self._outbox.replays(endpoint.name, self._batch_size)
        if replays:
            events = [event for event, _ in replays]
            wanted = [e for e in events if endpoint.wants(e)]
            error = await self._post(endpoint, wanted)
            self._count(endpoint, "ok" if error is None else "error", len(wanted))
            if error is None:
                await self._outbox.replayed(endpoint.name, self._holder, [e.seq for e in events])
            else:
                await self._failed(endpoint, state, error)
            return True
        batch = await self._outbox.pending(state.last_seq, self._batch_size)
        if not batch:
            return False
        wanted = [event for event in batch if endpoint.wants(event)]
        error = await self._post(endpoint, wanted)
        self._count(endpoint, "ok" if error is None else "error", len(wanted))
        if error is None:
            if state.failures >= endpoint.threshold:
                log.warning("endpoint %s is accepting events again", endpoint.name)
            await self._outbox.advance(endpoint.name, self._holder, batch[-1].seq, len(wanted))
        else:
            await self._failed(endpoint, state, error)
        return True

    async def _failed(self, endpoint: Endpoint, state: EndpointState, error: str) -> None:
        failures = state.failures + 1
        retry_at = datetime.now(UTC) + timedelta(seconds=endpoint.delay(failures))
        await self._outbox.failed(endpoint.name, self._holder, error, retry_at)
        level = logging.WARNING if failures == endpoint.threshold else logging.DEBUG
        log.log(level, "endpoint %s failed %d times in a row: %s", endpoint.name, failures, error)
        cutoff = datetime.now(UTC) - timedelta(seconds=endpoint.max_age)
        expired = await self._outbox.expire(
            endpoint.name, self._holder, state.last_seq, cutoff, error,
            endpoint.ignored_actions, endpoint.ignored_media_types)
        if expired:
            self._count(endpoint, "dropped", expired)
            log.warning("endpoint %s: %d events older than %ss moved to the dead letters",
                        endpoint.name, expired, endpoint.max_age)

    async def _post(self, endpoint: Endpoint, events: Sequence[StoredEvent]) -> str | None:
        """None on success, else why it failed."""
        if not events:
            return None
        assert self._session is not None
        body, media_type = render(endpoint, events)
        headers: list[tuple[str, str]] = [*endpoint.headers, ("Content-Type", media_type)]
        if endpoint.secret is not None:
            headers.append((SIGNATURE_HEADER, signature(endpoint.secret, body)))
        try:
            async with self._session.post(
                endpoint.url, data=body, headers=headers, allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=endpoint.timeout),
            ) as response:
                await response.read()
                if 200 <= response.status < 400:
                    return None
                return f"HTTP {response.status} {response.reason or ''}".strip()
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            return f"{type(exc).__name__}: {exc}".rstrip(": ")

    async def _prune_forever(self) -> None:
        names = [endpoint.name for endpoint in self._endpoints]
        while True:
            try:
                cutoff = datetime.now(UTC) - timedelta(seconds=self._retention)
                pruned = await self._outbox.prune(names, cutoff)
                if pruned:
                    log.debug("pruned %d delivered events", pruned)
            except Exception:
                log.warning("pruning delivered events failed", exc_info=True)
            await asyncio.sleep(PRUNE_INTERVAL)
