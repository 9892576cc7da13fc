"""Rate limits: `Retry-After`, and a window in which the client fails fast instead of
asking an upstream that told us to wait (Docker Hub counts every request we make)."""

from __future__ import annotations

import datetime
import email.utils
import logging
import re
import time

from dockyard.registry.mirror.remote import RemoteUnavailable

log = logging.getLogger("dockyard.remote")

RATE_LIMIT_DEFAULT = 10.0
"""Seconds to back off after a 429 that does not say how long."""

LONGEST = 900.0
"""An upstream asking for more than this is asked again after this long."""

_SECONDS = re.compile(r"\d+(?:\.\d+)?")


def parse_retry_after(value: str | None, now: datetime.datetime | None = None) -> float | None:
    """Seconds from `Retry-After`: delay-seconds or an HTTP date; None when absent or
    unreadable."""
    if value is None:
        return None
    value = value.strip()
    if _SECONDS.fullmatch(value):
        return min(float(value), LONGEST)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)
    now = now or datetime.datetime.now(datetime.UTC)
    return min(max(0.0, (when - now).total_seconds()), LONGEST)


class Backoff:
    """The window in which requests to one upstream are refused without being sent."""

    def __init__(self, host: str) -> None:
        self.host = host
        self._until = 0.0

    def check(self) -> None:
        """RemoteUnavailable (with the seconds left) while the window is open."""
        remaining = self._until - time.monotonic()
        if remaining > 0:
            raise RemoteUnavailable(
                f"{self.host} asked us to wait; not asking again for {remaining:.1f}s",
                retry_after=remaining)

    def start(self, seconds: float, status: int) -> None:
        """Open (or extend) the window; warn once when it opens, not per refused request."""
        now = time.monotonic()
        if self._until <= now:
            log.warning("upstream %s answered %d: backing off for %.1fs", self.host, status,
                        seconds)
        self._until = max(self._until, now + seconds)
