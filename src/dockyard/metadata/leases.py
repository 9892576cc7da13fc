"""Leases on cluster-wide jobs (GC, upload purging): one holder at a time, and when it last
finished, so each job runs about once per interval across every worker and node."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import literal, select, update

from dockyard.metadata.clock import utc_now
from dockyard.metadata.engine import Engines
from dockyard.metadata.interfaces import LeaseStore, Stale
from dockyard.metadata.records import LeaseRecord
from dockyard.metadata.schema import leases
from dockyard.metadata.upsert import Upsert

_ADD_LEASE = Upsert(leases, ["name"])


class SQLLeaseStore(LeaseStore):
    """LeaseStore on the lease rows."""

    def __init__(self, engines: Engines) -> None:
        self._engines = engines


    async def try_lease(self, name: str, holder: str, ttl: float,
                        stale: Stale | None = None) -> bool:
        now = utc_now()
        async with self._engines.begin_write() as connection:
            await connection.execute(_ADD_LEASE.on(connection), {"name": name})
            row = (await connection.execute(
                select(leases.c.holder, (leases.c.expires_at < now).label("expired"))
                .where(leases.c.name == name)
                .with_for_update()
            )).one()
            current: str | None = row.holder
            free = current is None or current == holder or bool(row.expired)
            if not free and stale is not None and current is not None:
                free = stale(current)
            if not free:
                return False
            await connection.execute(
                update(leases).where(leases.c.name == name)
                .values(holder=holder, expires_at=now + timedelta(seconds=ttl))
            )
        return True

    async def renew_lease(self, name: str, holder: str, ttl: float) -> bool:
        async with self._engines.begin_write() as connection:
            result = await connection.execute(
                update(leases).where(leases.c.name == name, leases.c.holder == holder)
                .values(expires_at=utc_now() + timedelta(seconds=ttl))
            )
        return bool(result.rowcount)

    async def release_lease(self, name: str, holder: str, finished: bool) -> None:
        values: dict[str, Any] = {"holder": None, "expires_at": None}
        if finished:
            values["finished_at"] = utc_now()
        async with self._engines.begin_write() as connection:
            await connection.execute(
                update(leases).where(leases.c.name == name, leases.c.holder == holder)
                .values(**values)
            )

    async def lease(self, name: str) -> LeaseRecord | None:
        now = utc_now()
        async with self._engines.read.connect() as connection:
            row = (await connection.execute(
                select(leases.c.holder, (leases.c.expires_at < now).label("expired"),
                       leases.c.finished_at)
                .where(leases.c.name == name)
            )).first()
        if row is None:
            return None
        return LeaseRecord(row.holder, bool(row.expired), row.finished_at)

    async def due(self, name: str, interval: float) -> bool:
        cutoff = utc_now() - timedelta(seconds=interval)
        async with self._engines.read.connect() as connection:
            finished = await connection.scalar(
                select(leases.c.finished_at).where(leases.c.name == name)
            )
            if finished is None:
                return True
            recent = await connection.scalar(
                select(literal(1)).where(leases.c.name == name, leases.c.finished_at >= cutoff)
            )
        return recent is None
