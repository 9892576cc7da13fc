"""Cluster-wide jobs (GC, upload purging): one holder at a time through a lease row.

Every worker runs the scheduler; each job runs about once per interval across all workers and
nodes, because the lease row records when it last finished. A holder renews its lease while
it works; a holder that died leaves a lease that expires, or that a process on the same host
takes over at once when it sees the holder's pid is gone (a restart after kill -9).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TypeVar

from dockyard.metadata.interfaces import LeaseStore

log = logging.getLogger("dockyard.maintenance")

T = TypeVar("T")

LEASE_TTL = 30.0
MAX_POLL = 60.0
FIRST_CHECK = (1.0, 3.0)


class LeaseBusy(RuntimeError):
    """Another process holds the job's lease."""


@cache
def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()[:8]
    except OSError:
        return "-"


def holder_id() -> str:
    return f"{socket.gethostname()}:{_boot_id()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def holder_is_dead(holder: str) -> bool:
    """True only for a holder on this host and boot whose process no longer exists."""
    parts = holder.rsplit(":", 3)
    if len(parts) != 4:
        return False
    host, boot, pid_text, _token = parts
    if host != socket.gethostname() or boot != _boot_id() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


async def run_exclusive(leases: LeaseStore, name: str, job: Callable[[], Awaitable[T]],
                        ttl: float = LEASE_TTL) -> T:
    """Run `job` holding the named lease, renewed every ttl/3; LeaseBusy if it is held."""
    holder = holder_id()
    if not await leases.try_lease(name, holder, ttl, stale=holder_is_dead):
        raise LeaseBusy(name)

    async def renew() -> None:
        while True:
            await asyncio.sleep(ttl / 3)
            if not await leases.renew_lease(name, holder, ttl):
                log.warning("%s: lease lost to another holder", name)

    renewer = asyncio.create_task(renew())
    finished = False
    try:
        result = await job()
        finished = True
        return result
    finally:
        renewer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await renewer
        await asyncio.shield(leases.release_lease(name, holder, finished))


@dataclass(frozen=True, slots=True)
class Job:
    name: str
    interval: float
    run: Callable[[], Awaitable[object]]
    allowed: Callable[[], Awaitable[bool]] | None = None
    """Checked before each run; scheduled jobs pause while the registry is read-only."""


class MaintenanceScheduler:
    def __init__(self, leases: LeaseStore, jobs: list[Job]) -> None:
        self._leases = leases
        self._jobs = jobs
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._loop(job)) for job in self._jobs]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    async def _loop(self, job: Job) -> None:
        await asyncio.sleep(random.uniform(*FIRST_CHECK))
        while True:
            try:
                await self._maybe_run(job)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s failed; will retry at the next interval", job.name)
            await asyncio.sleep(min(job.interval, MAX_POLL) * random.uniform(0.8, 1.2))

    async def _maybe_run(self, job: Job) -> None:
        if job.allowed is not None and not await job.allowed():
            return
        if not await self._leases.due(job.name, job.interval):
            return
        try:
            await run_exclusive(self._leases, job.name, job.run)
        except LeaseBusy:
            log.debug("%s: running elsewhere", job.name)
