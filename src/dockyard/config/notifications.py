"""The `notifications` section: webhooks told about pushes, pulls, mounts and deletes."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from dockyard.config.section import Section
from dockyard.config.values import Duration, HttpURL, PositiveDuration


class NotificationIgnoreConfig(Section):
    """Events an endpoint does not want, by media type or action."""

    mediatypes: list[str] = Field(default_factory=list)
    actions: list[Literal["push", "pull", "mount", "delete"]] = Field(default_factory=list)


class NotificationEndpointConfig(Section):
    """One webhook receiver (distribution's notifications.endpoints[] plus secret, format,
    maxbackoff and maxage)."""

    name: str = Field(min_length=1, max_length=200)
    url: HttpURL
    disabled: bool = False
    headers: dict[str, list[str]] = Field(default_factory=dict)
    timeout: PositiveDuration = "5s"
    threshold: int = Field(default=10, ge=1)
    """Consecutive failures after which the endpoint is reported failing (and logged)."""
    backoff: PositiveDuration = "1s"
    """First retry delay; it doubles with each failure up to maxbackoff."""
    maxbackoff: PositiveDuration = "5m"
    maxage: PositiveDuration = "24h"
    """Events still undelivered this long after they were recorded go to the dead letters."""
    secret: str | None = Field(default=None, min_length=1)
    """Signs each body: X-Dockyard-Signature: sha256=<hex HMAC-SHA256 of the body>."""
    format: Literal["distribution", "cloudevents"] = "distribution"
    ignoredmediatypes: list[str] = Field(default_factory=list)
    ignore: NotificationIgnoreConfig = Field(default_factory=NotificationIgnoreConfig)

    @property
    def ignored_media_types(self) -> frozenset[str]:
        """Both of distribution's ways to ignore media types, as one set."""
        return frozenset(self.ignoredmediatypes) | frozenset(self.ignore.mediatypes)


class PullEventsConfig(Section):
    """A busy cluster pulls far more than it pushes: pull events may be sampled or dropped."""

    disabled: bool = False
    samplerate: float = Field(default=1.0, ge=0.0, le=1.0)


class NotificationEventsConfig(Section):
    """What goes into events, and which pull events are recorded at all."""

    includereferences: bool = False
    pulls: PullEventsConfig = Field(default_factory=PullEventsConfig)


class NotificationsConfig(Section):
    """distribution's `notifications` section, delivered from a durable outbox in the DB."""

    events: NotificationEventsConfig = Field(default_factory=NotificationEventsConfig)
    endpoints: list[NotificationEndpointConfig] = Field(default_factory=list)
    lease: PositiveDuration = "15s"
    """How long a crashed node's claim on an endpoint keeps others from delivering to it."""
    retention: Duration = "1h"
    """Delivered events are kept this long, for `dockyard events replay`."""

    @model_validator(mode="after")
    def _unique_names(self) -> NotificationsConfig:
        names = [endpoint.name for endpoint in self.endpoints]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"endpoint names must be unique: {', '.join(repeated)}")
        return self

    @property
    def active_endpoints(self) -> list[NotificationEndpointConfig]:
        """The endpoints not `disabled`."""
        return [endpoint for endpoint in self.endpoints if not endpoint.disabled]
