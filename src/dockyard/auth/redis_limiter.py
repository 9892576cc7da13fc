"""Failed-login counts in Redis, so every worker and node enforces one shared limit.

Each key is a sorted set of failure times (a sliding window). Redis down must not lock
everybody out nor switch the protection off: the limiter then counts in this process, as
`MemoryFailureLimiter` does, until Redis answers again.
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from collections.abc import Callable

from redis import Redis
from redis.exceptions import RedisError

from dockyard.auth.ratelimit import MemoryFailureLimiter

log = logging.getLogger("dockyard.auth")

PREFIX = "dockyard:logins:"
BACKOFF_SECONDS = 5.0


class RedisFailureLimiter:
    def __init__(self, client: Redis, window: float, limit: Callable[[str], int],
                 clock: Callable[[], float] = time.time) -> None:
        self._redis = client
        self._window = window
        self._limit = limit
        self._clock = clock
        self._fallback = MemoryFailureLimiter(window, limit)
        self._resume_at = 0.0

    def _available(self) -> bool:
        return time.monotonic() >= self._resume_at

    def _lost(self, error: RedisError) -> None:
        if self._available():
            log.warning("login limits counted per process: Redis failed (%s)", error)
        self._resume_at = time.monotonic() + BACKOFF_SECONDS

    def blocked_for(self, keys: list[str]) -> int:
        if not self._available():
            return self._fallback.blocked_for(keys)
        now = self._clock()
        pipeline = self._redis.pipeline(transaction=False)
        for key in keys:
            limit = self._limit(key)
            pipeline.zremrangebyscore(PREFIX + key, "-inf", now - self._window)
            pipeline.zrange(PREFIX + key, -limit, -limit, withscores=True)
        try:
            replies = pipeline.execute()
        except RedisError as error:
            self._lost(error)
            return self._fallback.blocked_for(keys)
        wait = 0.0
        for oldest_counted in replies[1::2]:
            if oldest_counted:  # the limit-th most recent failure is still in the window
                wait = max(wait, float(oldest_counted[0][1]) + self._window - now)
        return math.ceil(wait) if wait > 0 else 0

    def failed(self, keys: list[str]) -> None:
        self._fallback.failed(keys)
        if not self._available():
            return
        now = self._clock()
        pipeline = self._redis.pipeline(transaction=False)
        for key in keys:
            pipeline.zadd(PREFIX + key, {f"{now}:{uuid.uuid4().hex}": now})
            pipeline.zremrangebyrank(PREFIX + key, 0, -self._limit(key) - 1)
            pipeline.expire(PREFIX + key, math.ceil(self._window))
        try:
            pipeline.execute()
        except RedisError as error:
            self._lost(error)

    def succeeded(self, keys: list[str]) -> None:
        self._fallback.succeeded(keys)
        if not self._available():
            return
        try:
            self._redis.delete(*(PREFIX + key for key in keys))
        except RedisError as error:
            self._lost(error)
