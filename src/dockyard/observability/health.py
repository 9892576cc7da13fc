"""Readiness (can this worker serve?) and distribution's periodic health checks.

A check is an async callable that returns when healthy and raises when not; its exception
text is what the operator sees. Readiness runs its checks on demand (a probe every few
seconds) with a short cache so a burst of probes costs one round of checks. The periodic
checks behind /debug/health run on their own intervals and report a failure only after
`threshold` failures in a row, as distribution does.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import aiohttp
from sqlalchemy import text

from dockyard.storage.base import BlobStore, StoreUnusable

if TYPE_CHECKING:  # SQLAlchemy's asyncio extension (and ORM) stay out of the supervisor
    from sqlalchemy.ext.asyncio import AsyncEngine

log = logging.getLogger("dockyard.health")

Check = Callable[[], Awaitable[None]]

class Unhealthy(Exception):
    """A check's failure, worded for the operator."""


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    return str(exc) or type(exc).__name__


async def _run(check: Check, timeout: float) -> str | None:
    try:
        await asyncio.wait_for(check(), timeout)
    except Exception as exc:
        return _reason(exc)
    return None


# --- checks -----------------------------------------------------------------------------------


def database_check(engine: AsyncEngine, head: str | None) -> Check:
    """Reachable (a query answers) and migrated to this Dockyard's schema head."""

    async def check() -> None:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
            if head is None:
                return
            current = (await connection.execute(
                text("SELECT version_num FROM alembic_version"))).scalar()
        if current != head:
            raise Unhealthy(f"schema at {current or 'nothing'}, this Dockyard needs {head}")

    return check


def storage_check(store: BlobStore) -> Check:
    """The store can hold blobs now (its bucket exists and lets us in, its root takes files)."""

    async def check() -> None:
        try:
            await store.verify()
        except StoreUnusable as exc:
            raise Unhealthy(str(exc)) from None

    return check


def file_check(path: str) -> Check:
    async def check() -> None:
        if os.path.exists(path):
            raise Unhealthy(f"file exists: {path}")

    return check


def http_check(uri: str, headers: Mapping[str, list[str]], status: int,
               timeout: float) -> Check:
    async def check() -> None:
        flat = [(name, value) for name, values in headers.items() for value in values]
        client_timeout = aiohttp.ClientTimeout(total=timeout)
        async with aiohttp.ClientSession(timeout=client_timeout) as session, \
                session.get(uri, headers=flat, allow_redirects=False) as response:
            if response.status != status:
                raise Unhealthy(f"downstream service returned unexpected status: "
                                f"{response.status}")

    return check


def tcp_check(host: str, port: int, timeout: float) -> Check:
    async def check() -> None:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
        writer.close()

    return check


# --- readiness --------------------------------------------------------------------------------


class Readiness:
    """Named checks run together; the result is cached briefly."""

    def __init__(self, checks: Mapping[str, Check], timeout: float = 3.0,
                 cache_seconds: float = 1.0) -> None:
        self._checks = dict(checks)
        self._timeout = timeout
        self._cache_seconds = cache_seconds
        self._cached: tuple[float, dict[str, str | None]] | None = None
        self._lock = asyncio.Lock()

    async def status(self) -> dict[str, str | None]:
        """Each check's failure, or None where it passed."""
        async with self._lock:
            now = time.monotonic()
            if self._cached is not None and now - self._cached[0] < self._cache_seconds:
                return self._cached[1]
            names = list(self._checks)
            results = await asyncio.gather(
                *(_run(self._checks[name], self._timeout) for name in names))
            status = dict(zip(names, results, strict=True))
            self._cached = (time.monotonic(), status)
            return status


# --- periodic checks (/debug/health) ----------------------------------------------------------


@dataclass(frozen=True)
class PeriodicCheck:
    name: str
    check: Check
    interval: float
    threshold: int = 1
    timeout: float = 10.0


class HealthRegistry:
    """Runs periodic checks in the background and keeps the failing ones."""

    def __init__(self, checks: list[PeriodicCheck]) -> None:
        self._checks = checks
        self._failures: dict[str, str] = {}
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def failures(self) -> dict[str, str]:
        return dict(self._failures)

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._loop(check)) for check in self._checks]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    async def _loop(self, periodic: PeriodicCheck) -> None:
        consecutive = 0
        while True:
            error = await _run(periodic.check, periodic.timeout)
            if error is None:
                consecutive = 0
                if self._failures.pop(periodic.name, None) is not None:
                    log.info("health check %s passes again", periodic.name)
            else:
                consecutive += 1
                if consecutive >= periodic.threshold:
                    if periodic.name not in self._failures:
                        log.warning("health check %s fails: %s", periodic.name, error)
                    self._failures[periodic.name] = error
            await asyncio.sleep(periodic.interval)
