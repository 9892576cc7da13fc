"""Failed logins, counted per user and per address, to slow down password guessing.

`FailureLimiter` is the interface; `MemoryFailureLimiter` counts in this process. A shared
store (several nodes) implements the same three methods.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol

_MAX_KEYS = 100_000


class FailureLimiter(Protocol):
    def blocked_for(self, keys: list[str]) -> int:
        """Seconds until any of `keys` may try again; 0 when none is blocked."""

    def failed(self, keys: list[str]) -> None:
        """Record one failed login against each key."""

    def succeeded(self, keys: list[str]) -> None:
        """Forget the failures of these keys."""


class MemoryFailureLimiter:
    """At most `limit(key)` failures per key within `window` seconds (a sliding window)."""

    def __init__(self, window: float, limit: Callable[[str], int],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._window = window
        self._limit = limit
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> deque[float] | None:
        times = self._failures.get(key)
        if times is None:
            return None
        while times and times[0] <= now - self._window:
            times.popleft()
        if not times:
            del self._failures[key]
            return None
        return times

    def blocked_for(self, keys: list[str]) -> int:
        now = self._clock()
        wait = 0.0
        with self._lock:
            for key in keys:
                times = self._recent(key, now)
                if times is not None and len(times) >= self._limit(key):
                    wait = max(wait, times[-self._limit(key)] + self._window - now)
        return math.ceil(wait) if wait > 0 else 0

    def failed(self, keys: list[str]) -> None:
        now = self._clock()
        with self._lock:
            if len(self._failures) > _MAX_KEYS:
                for key in list(self._failures):
                    self._recent(key, now)
            for key in keys:
                times = self._failures.setdefault(key, deque())
                times.append(now)
                while len(times) > self._limit(key):
                    times.popleft()

    def succeeded(self, keys: list[str]) -> None:
        with self._lock:
            for key in keys:
                self._failures.pop(key, None)


def user_key(user: str) -> str:
    return "user:" + user


def address_key(address: str) -> str:
    return "addr:" + address
