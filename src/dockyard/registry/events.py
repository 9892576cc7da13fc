"""Registry events in distribution's notification format, recorded for durable delivery.

Push, mount and delete events are handed to the metadata store with the change they describe
and commit in its transaction (the outbox), so a change is never without its event nor an
event without its change. Pull events describe no change: they are sampled and buffered here,
then written in batches off the request path. That makes them best-effort (a crash can lose
the last ~100 ms of them), the price of not turning every pull into a database write.
With no endpoint configured the recorder is disabled and nothing is recorded at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from dockyard.metadata.interfaces import EventLog
from dockyard.metadata.records import EventRow

log = logging.getLogger("dockyard.events")

PUSH = "push"
PULL = "pull"
MOUNT = "mount"
DELETE = "delete"

BLOB_MEDIA_TYPE = "application/octet-stream"
"""What distribution reports as a blob event's media type."""

PULL_FLUSH_INTERVAL = 0.1
PULL_BUFFER_LIMIT = 10_000


@dataclass(frozen=True, slots=True)
class EventContext:
    """Who asked for the change, as the event's `request` and `actor` report it."""

    request_id: str = ""
    addr: str = ""
    host: str = ""
    method: str = ""
    useragent: str = ""
    actor: str = ""
    base_url: str = ""
    """Scheme and authority the event's target `url` starts with."""


@dataclass(frozen=True, slots=True)
class EventSettings:
    include_references: bool = False
    pull_sample_rate: float = 1.0
    """Share of pulls recorded: 1 all, 0 none."""
    source_addr: str = ""
    instance_id: str = field(default_factory=lambda: str(uuid.uuid4()))


@dataclass(frozen=True, slots=True)
class Reference:
    media_type: str
    digest: str
    size: int


def _timestamp(moment: datetime) -> str:
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


class EventRecorder:
    """Builds event rows; `enabled` False makes every method a no-op."""

    def __init__(self, log: EventLog | None, settings: EventSettings | None = None) -> None:
        self._log = log
        self._settings = settings or EventSettings()
        self.enabled = log is not None
        self._pulls: list[EventRow] = []
        self._dropped = 0
        self._listeners: list[Callable[[], None]] = []
        self._flusher: asyncio.Task[None] | None = None

    # -- building -----------------------------------------------------------------------------

    def _event(self, context: EventContext, action: str, target: dict[str, Any]) -> EventRow:
        now = datetime.now(UTC)
        event_id = str(uuid.uuid4())
        document = {
            "id": event_id,
            "timestamp": _timestamp(now),
            "action": action,
            "target": {key: value for key, value in target.items() if value is not None},
            "request": {
                "id": context.request_id, "addr": context.addr, "host": context.host,
                "method": context.method, "useragent": context.useragent,
            },
            "actor": {"name": context.actor} if context.actor else {},
            "source": {"addr": self._settings.source_addr,
                       "instanceID": self._settings.instance_id},
        }
        return EventRow(event_id, action, target.get("mediaType"), now,
                        json.dumps(document, separators=(",", ":")))

    def _url(self, context: EventContext, repository: str, kind: str, reference: str) -> str:
        return f"{context.base_url}/v2/{repository}/{kind}/{reference}"

    def manifest_pushed(self, context: EventContext | None, repository: str, digest: str,
                        media_type: str, size: int, tags: Sequence[str],
                        references: Sequence[Reference]) -> list[EventRow]:
        """One event per tag the push set (distribution sends one per request's tag)."""
        if context is None or not self.enabled:
            return []
        target: dict[str, Any] = {
            "mediaType": media_type, "size": size, "digest": digest, "length": size,
            "repository": repository,
            "url": self._url(context, repository, "manifests", digest),
        }
        if self._settings.include_references:
            target["references"] = [
                {"mediaType": ref.media_type, "digest": ref.digest, "size": ref.size}
                for ref in references
            ]
        names: list[str | None] = list(dict.fromkeys(tags)) or [None]
        return [self._event(context, PUSH, {**target, "tag": tag}) for tag in names]

    def manifest_deleted(self, context: EventContext | None, repository: str,
                         digest: str) -> list[EventRow]:
        if context is None or not self.enabled:
            return []
        return [self._event(context, DELETE, {"digest": digest, "repository": repository})]

    def tag_deleted(self, context: EventContext | None, repository: str,
                    tag: str) -> list[EventRow]:
        if context is None or not self.enabled:
            return []
        return [self._event(context, DELETE, {"repository": repository, "tag": tag})]

    def _blob_target(self, context: EventContext, repository: str, digest: str,
                     size: int) -> dict[str, Any]:
        return {
            "mediaType": BLOB_MEDIA_TYPE, "size": size, "digest": digest, "length": size,
            "repository": repository, "url": self._url(context, repository, "blobs", digest),
        }

    def blob_pushed(self, context: EventContext | None, repository: str, digest: str,
                    size: int) -> list[EventRow]:
        if context is None or not self.enabled:
            return []
        return [self._event(context, PUSH, self._blob_target(context, repository, digest, size))]

    def blob_mounted(self, context: EventContext | None, repository: str, digest: str,
                     size: int, source: str) -> list[EventRow]:
        if context is None or not self.enabled:
            return []
        target = {**self._blob_target(context, repository, digest, size),
                  "fromRepository": source}
        return [self._event(context, MOUNT, target)]

    def blob_deleted(self, context: EventContext | None, repository: str,
                     digest: str) -> list[EventRow]:
        if context is None or not self.enabled:
            return []
        target = {"mediaType": BLOB_MEDIA_TYPE, "digest": digest, "repository": repository}
        return [self._event(context, DELETE, target)]

    # -- pulls: sampled, buffered ---------------------------------------------------------------

    def _sampled(self) -> bool:
        rate = self._settings.pull_sample_rate
        return rate >= 1.0 or (rate > 0.0 and random.random() < rate)

    def _buffer(self, row: EventRow) -> None:
        if len(self._pulls) >= PULL_BUFFER_LIMIT:
            self._dropped += 1
            return
        self._pulls.append(row)

    def manifest_pulled(self, context: EventContext | None, repository: str, digest: str,
                        media_type: str, size: int, tag: str | None) -> None:
        if context is None or not self.enabled or not self._sampled():
            return
        self._buffer(self._event(context, PULL, {
            "mediaType": media_type, "size": size, "digest": digest, "length": size,
            "repository": repository, "tag": tag,
            "url": self._url(context, repository, "manifests", digest),
        }))

    def blob_pulled(self, context: EventContext | None, repository: str, digest: str,
                    size: int) -> None:
        if context is None or not self.enabled or not self._sampled():
            return
        self._buffer(self._event(context, PULL,
                                 self._blob_target(context, repository, digest, size)))

    async def flush(self) -> None:
        """Write buffered pull events; on a database error they are dropped (best-effort)."""
        if self._dropped:
            log.warning("dropped %d pull events: buffer full", self._dropped)
            self._dropped = 0
        if not self._pulls or self._log is None:
            return
        rows, self._pulls = self._pulls, []
        try:
            await self._log.append(rows)
        except Exception:
            log.exception("could not record %d pull events", len(rows))
            return
        self.committed()

    async def _flush_forever(self) -> None:
        while True:
            await asyncio.sleep(PULL_FLUSH_INTERVAL)
            await self.flush()

    # -- start, stop and wake-ups ------------------------------------------------------------------

    def on_commit(self, listener: Callable[[], None]) -> None:
        """Call `listener` after events commit here, so delivery need not wait for its poll."""
        self._listeners.append(listener)

    def committed(self) -> None:
        for listener in self._listeners:
            listener()

    async def start(self) -> None:
        if self.enabled and self._settings.pull_sample_rate > 0 and self._flusher is None:
            self._flusher = asyncio.get_running_loop().create_task(self._flush_forever())

    async def stop(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
            self._flusher = None
        await self.flush()
