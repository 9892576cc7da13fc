"""Malformed requests and clients that go away: one short line each, at INFO, rate-limited.

aiohttp logs both through its `aiohttp.server` logger at ERROR with a traceback: a scanner
sending garbage or a CI job cancelled mid-push wrote ten lines per request into the error
log, burying real faults. They are the client's doing, so they are counted
(`dockyard_http_rejected_requests_total{reason}`) and logged as one line with the reason, at
most LINES_PER_MINUTE per reason; what was left out is summed up in one line later. Every
other error (a bug that answered 500) keeps its traceback.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from typing import Any

from aiohttp.http_exceptions import HttpProcessingError

from dockyard.observability.metrics import HTTP_REJECTED

LINES_PER_MINUTE = 10
WINDOW = 60.0
_DETAIL_CHARS = 200

MALFORMED = "malformed"
DISCONNECTED = "disconnected"
_LINES = {MALFORMED: "malformed request from %s refused: %s",
          DISCONNECTED: "client %s went away mid-request: %s"}


def rejection_reason(error: BaseException) -> str | None:
    """MALFORMED, DISCONNECTED, or None for an error that is the server's own.

    A ConnectionError caused by something else (a storage read failing mid-body, which
    blobs and sendfile turn into a reset) is the server's: it keeps its traceback.
    """
    if isinstance(error, HttpProcessingError):
        return MALFORMED
    if isinstance(error, ConnectionError) and (
            error.__cause__ is None or isinstance(error.__cause__, ConnectionError)):
        return DISCONNECTED
    return None


class RateLimiter:
    """At most `limit` lines per reason in each window; the rest counted, then summed up."""

    def __init__(self, limit: int = LINES_PER_MINUTE, window: float = WINDOW,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._limit = limit
        self._window = window
        self._clock = clock
        self._windows: dict[str, tuple[float, int]] = {}  # reason -> (start, lines in it)

    def admit(self, reason: str) -> tuple[bool, int]:
        """Whether this line may be written, and how many lines the window that just ended
        left out (to be summed up once, before this one)."""
        now = self._clock()
        start, seen = self._windows.get(reason, (now, 0))
        left_out = 0
        if now - start >= self._window:
            left_out = max(seen - self._limit, 0)
            start, seen = now, 0
        self._windows[reason] = (start, seen + 1)
        return seen < self._limit, left_out


def _detail(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= _DETAIL_CHARS else text[:_DETAIL_CHARS] + "..."


class RejectionLogger(logging.LoggerAdapter):  # type: ignore[type-arg]
    """Stands in for aiohttp's server logger (the `logger` of its request handlers)."""

    def __init__(self, logger: logging.Logger, limiter: RateLimiter | None = None) -> None:
        super().__init__(logger, {})
        self._limiter = limiter or RateLimiter()

    def log(self, level: int, msg: object, *args: object, exc_info: Any = None,
            **kwargs: Any) -> None:
        error = sys.exc_info()[1] if exc_info is True else exc_info
        reason = rejection_reason(error) if isinstance(error, BaseException) else None
        if reason is None or not isinstance(error, BaseException):
            super().log(level, msg, *args, exc_info=exc_info, **kwargs)
            return
        HTTP_REJECTED.labels(reason).inc()
        admitted, left_out = self._limiter.admit(reason)
        if left_out:
            super().log(logging.INFO, "%d more %s requests were not logged (%d lines a minute)",
                        left_out, reason, LINES_PER_MINUTE)
        if admitted:
            client = args[0] if len(args) == 1 else "a client"  # "... request from %s"
            line = _LINES[reason]
            super().log(min(level, logging.INFO), line, client, _detail(error))
