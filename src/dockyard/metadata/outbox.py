"""The event outbox: events recorded with the changes they describe, and delivery state.

Sequence numbers come from one counter row bumped at the end of the recording transaction.
That row is locked until commit, so sequence order is commit order on every engine: a cursor
that has passed sequence N can never later find an event below N appear (an autoincrement
key would allow that on PostgreSQL, where ids are handed out before commit).
Each endpoint has a cursor (the last sequence it got), a lease so one worker at a time
delivers to it, and dead letters: events it gave up on, kept until replayed.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, exists, func, insert, not_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from dockyard.metadata.clock import utc_now
from dockyard.metadata.engine import Engines
from dockyard.metadata.records import EventRow
from dockyard.metadata.schema import event_counter, event_dead_letters, event_endpoints, events
from dockyard.metadata.upsert import Upsert

COUNTER = "events"
"""event_counter's row that hands out event sequence numbers."""

# Several workers start at once: the first insert wins, the others do nothing.
_ADD_ENDPOINT = Upsert(event_endpoints, ["name"])


def _aware(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; everything stored here is UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """A recorded event with the sequence number its commit got."""

    seq: int
    id: str
    action: str
    media_type: str | None
    created_at: datetime
    payload: str


@dataclass(frozen=True, slots=True)
class EndpointState:
    """An endpoint's delivery row: cursor, counters, last outcomes, backoff and lease."""

    name: str
    last_seq: int
    delivered: int
    failures: int
    last_error: str | None
    last_success_at: datetime | None
    last_failure_at: datetime | None
    next_attempt_at: datetime | None
    lease_holder: str | None
    lease_expires_at: datetime | None


@dataclass(frozen=True, slots=True)
class EndpointStatus:
    """What an operator sees of an endpoint: its state and how many events wait, and how."""

    state: EndpointState
    pending: int
    dead: int
    replaying: int


async def append_events(connection: AsyncConnection, rows: Sequence[EventRow]) -> None:
    """Record events inside the caller's transaction; last, to hold the counter lock briefly."""
    if not rows:
        return
    result = await connection.execute(
        update(event_counter)
        .where(event_counter.c.name == COUNTER)
        .values(value=event_counter.c.value + len(rows))
        .returning(event_counter.c.value)
    )
    top = int(result.scalar_one())
    first = top - len(rows) + 1
    await connection.execute(
        insert(events),
        [
            {"seq": first + index, "id": row.id, "action": row.action,
             "media_type": row.media_type, "created_at": row.created_at, "payload": row.payload}
            for index, row in enumerate(rows)
        ],
    )


def _state(row: Any) -> EndpointState:
    return EndpointState(
        name=row.name, last_seq=int(row.last_seq), delivered=int(row.delivered),
        failures=int(row.failures), last_error=row.last_error,
        last_success_at=_aware(row.last_success_at), last_failure_at=_aware(row.last_failure_at),
        next_attempt_at=_aware(row.next_attempt_at), lease_holder=row.lease_holder,
        lease_expires_at=_aware(row.lease_expires_at),
    )


def _stored(row: Any) -> StoredEvent:
    return StoredEvent(int(row.seq), row.id, row.action, row.media_type,
                       _aware(row.created_at) or utc_now(), row.payload)


def _wanted(ignored_actions: Collection[str], ignored_media_types: Collection[str]) -> Any:
    """SQL for "an event this endpoint wants", mirroring `Filter.wants` in delivery."""
    clauses: list[Any] = []
    if ignored_actions:
        clauses.append(events.c.action.not_in(list(ignored_actions)))
    if ignored_media_types:
        clauses.append(or_(events.c.media_type.is_(None),
                           events.c.media_type.not_in(list(ignored_media_types))))
    return and_(*clauses) if clauses else None


class Outbox:
    """Outbox queries for the recorder (pull events), the delivery worker and the CLI."""

    def __init__(self, engines: Engines) -> None:
        self._engines = engines

    async def close(self) -> None:
        """Dispose of the engines (for an outbox that owns them, as the CLI's does)."""
        await self._engines.dispose()

    async def append(self, rows: Sequence[EventRow]) -> None:
        """Record events that describe no change of their own (pulls), in one transaction."""
        if rows:
            async with self._engines.begin_write() as connection:
                await append_events(connection, rows)

    async def ensure_endpoints(self, names: Collection[str]) -> None:
        """A new endpoint starts at the current head: it gets events recorded from now on."""
        if not names:
            return
        async with self._engines.begin_write() as connection:
            known = set((await connection.scalars(
                select(event_endpoints.c.name).where(event_endpoints.c.name.in_(list(names)))
            )).all())
            missing = [name for name in names if name not in known]
            if not missing:
                return
            head = await connection.scalar(
                select(event_counter.c.value).where(event_counter.c.name == COUNTER))
            await connection.execute(
                _ADD_ENDPOINT.on(connection),
                [{"name": name, "last_seq": int(head or 0), "delivered": 0, "failures": 0}
                 for name in missing],
            )

    async def take_lease(self, name: str, holder: str, seconds: float) -> EndpointState | None:
        """Take or renew the endpoint's lease; its state when this holder has it, else None."""
        now = utc_now()
        async with self._engines.begin_write() as connection:
            result = await connection.execute(
                update(event_endpoints)
                .where(event_endpoints.c.name == name)
                .where(or_(event_endpoints.c.lease_holder.is_(None),
                           event_endpoints.c.lease_holder == holder,
                           event_endpoints.c.lease_expires_at < now))
                .values(lease_holder=holder, lease_expires_at=now + timedelta(seconds=seconds))
            )
            if not result.rowcount:
                return None
            row = (await connection.execute(
                select(event_endpoints).where(event_endpoints.c.name == name))).one()
        return _state(row)

    async def release_lease(self, name: str, holder: str) -> None:
        """Give the endpoint's lease up, if this holder still has it."""
        async with self._engines.begin_write() as connection:
            await connection.execute(
                update(event_endpoints)
                .where(event_endpoints.c.name == name, event_endpoints.c.lease_holder == holder)
                .values(lease_holder=None, lease_expires_at=None)
            )

    async def pending(self, after: int, limit: int) -> list[StoredEvent]:
        """Up to `limit` events after sequence `after`, in order."""
        async with self._engines.read.connect() as connection:
            rows = (await connection.execute(
                select(events).where(events.c.seq > after).order_by(events.c.seq).limit(limit)
            )).all()
        return [_stored(row) for row in rows]

    async def pending_count(self, after: int, ignored_actions: Collection[str] = (),
                            ignored_media_types: Collection[str] = ()) -> int:
        """Events after the cursor that the endpoint wants (for the pending gauge)."""
        count = select(func.count()).select_from(events).where(events.c.seq > after)
        wanted = _wanted(ignored_actions, ignored_media_types)
        if wanted is not None:
            count = count.where(wanted)
        async with self._engines.read.connect() as connection:
            return int(await connection.scalar(count) or 0)

    async def has_work(self, name: str, after: int) -> bool:
        """A cheap read for an idle deliverer: anything after the cursor, or to replay?"""
        newer = select(events.c.seq).where(events.c.seq > after).limit(1)
        replay = select(event_dead_letters.c.seq).where(
            event_dead_letters.c.endpoint == name,
            event_dead_letters.c.replay_at.is_not(None)).limit(1)
        async with self._engines.read.connect() as connection:
            if await connection.scalar(newer) is not None:
                return True
            return await connection.scalar(replay) is not None

    async def replays(self, name: str, limit: int) -> list[tuple[StoredEvent, datetime]]:
        """Dead letters queued for another try, oldest first, with when they were queued."""
        rows = await self._dead_letter_rows(name, limit, queued=True)
        return [(_stored(row), _aware(row.replay_at) or utc_now()) for row in rows]

    async def _dead_letter_rows(self, name: str, limit: int, queued: bool) -> Sequence[Any]:
        """Dead letters of an endpoint with their events, oldest first: those queued for
        replay (`queued`) or those still waiting for an operator."""
        replay_at = event_dead_letters.c.replay_at
        query = (
            select(events, event_dead_letters.c.failed_at, event_dead_letters.c.last_error,
                   replay_at)
            .select_from(events.join(event_dead_letters,
                                     event_dead_letters.c.seq == events.c.seq))
            .where(event_dead_letters.c.endpoint == name,
                   replay_at.is_not(None) if queued else replay_at.is_(None))
            .order_by(events.c.seq)
            .limit(limit)
        )
        async with self._engines.read.connect() as connection:
            return (await connection.execute(query)).all()

    def _held(self, name: str, holder: str) -> Any:
        return and_(event_endpoints.c.name == name, event_endpoints.c.lease_holder == holder)

    async def advance(self, name: str, holder: str, last_seq: int, delivered: int) -> bool:
        """Move the cursor past a batch; False if the lease was lost meanwhile."""
        values: dict[str, Any] = {
            "last_seq": last_seq, "failures": 0, "next_attempt_at": None,
            "delivered": event_endpoints.c.delivered + delivered,
        }
        if delivered:
            values["last_success_at"] = utc_now()
        async with self._engines.begin_write() as connection:
            result = await connection.execute(
                update(event_endpoints)
                .where(self._held(name, holder), event_endpoints.c.last_seq < last_seq)
                .values(**values)
            )
        return bool(result.rowcount)

    async def replayed(self, name: str, holder: str, seqs: Sequence[int]) -> bool:
        """Dead letters delivered on replay: gone from the dead-letter list."""
        now = utc_now()
        async with self._engines.begin_write() as connection:
            result = await connection.execute(
                update(event_endpoints).where(self._held(name, holder)).values(
                    failures=0, next_attempt_at=None, last_success_at=now,
                    delivered=event_endpoints.c.delivered + len(seqs))
            )
            if not result.rowcount:
                return False
            await connection.execute(delete(event_dead_letters).where(
                event_dead_letters.c.endpoint == name, event_dead_letters.c.seq.in_(list(seqs))))
        return True

    async def failed(self, name: str, holder: str, error: str, retry_at: datetime) -> None:
        """Record a failed attempt and when to try again (while the lease is still held)."""
        async with self._engines.begin_write() as connection:
            await connection.execute(
                update(event_endpoints).where(self._held(name, holder)).values(
                    failures=event_endpoints.c.failures + 1, last_error=error[:2000],
                    last_failure_at=utc_now(), next_attempt_at=retry_at)
            )

    async def expire(self, name: str, holder: str, last_seq: int, cutoff: datetime,
                     error: str, ignored_actions: Collection[str] = (),
                     ignored_media_types: Collection[str] = ()) -> int:
        """Dead-letter the pending events recorded before `cutoff`; how many went.

        Only a prefix of the queue goes (up to the newest too-old event), so the cursor
        still passes events in order. Replayed dead letters that failed again past the
        cutoff go back to plain dead letters.
        """
        now = utc_now()
        async with self._engines.begin_write() as connection:
            await connection.execute(
                update(event_dead_letters)
                .where(event_dead_letters.c.endpoint == name,
                       event_dead_letters.c.replay_at < cutoff)
                .values(replay_at=None, failed_at=now, last_error=error[:2000])
            )
            newest = await connection.scalar(
                select(func.max(events.c.seq))
                .where(events.c.seq > last_seq, events.c.created_at < cutoff)
            )
            if newest is None:
                return 0
            query = select(events.c.seq).where(events.c.seq > last_seq, events.c.seq <= newest)
            wanted = _wanted(ignored_actions, ignored_media_types)
            seqs = (await connection.scalars(
                query if wanted is None else query.where(wanted))).all()
            result = await connection.execute(
                update(event_endpoints)
                .where(self._held(name, holder), event_endpoints.c.last_seq == last_seq)
                .values(last_seq=int(newest))
            )
            if not result.rowcount:
                return 0
            if seqs:  # events the endpoint ignores are passed, not dead-lettered
                await connection.execute(insert(event_dead_letters), [
                    {"endpoint": name, "seq": int(seq), "failed_at": now,
                     "last_error": error[:2000], "replay_at": None}
                    for seq in seqs
                ])
        return len(seqs)

    async def prune(self, keep_for: Collection[str], older_than: datetime) -> int:
        """Drop events every listed endpoint has passed, older than the retention, not dead."""
        async with self._engines.begin_write() as connection:
            query = select(func.min(event_endpoints.c.last_seq))
            if keep_for:
                query = query.where(event_endpoints.c.name.in_(list(keep_for)))
            floor = await connection.scalar(query)
            if floor is None:
                return 0
            dead = exists().where(event_dead_letters.c.seq == events.c.seq)
            result = await connection.execute(
                delete(events).where(events.c.seq <= int(floor),
                                     events.c.created_at < older_than, not_(dead))
            )
        return int(result.rowcount or 0)

    # -- operators ----------------------------------------------------------------------------

    async def status(self, names: Sequence[str],
                     ignored: Mapping[str, tuple[Collection[str], Collection[str]]]
                     ) -> list[EndpointStatus]:
        """Per endpoint: its state, events it still wants, dead letters, queued replays."""
        out: list[EndpointStatus] = []
        async with self._engines.read.connect() as connection:
            rows = {row.name: _state(row) for row in (await connection.execute(
                select(event_endpoints).where(event_endpoints.c.name.in_(list(names))))).all()}
            for name in names:
                state = rows.get(name)
                if state is None:
                    continue
                count = select(func.count()).select_from(events).where(
                    events.c.seq > state.last_seq)
                wanted = _wanted(*ignored.get(name, ((), ())))
                if wanted is not None:
                    count = count.where(wanted)
                pending = int(await connection.scalar(count) or 0)
                dead = int(await connection.scalar(
                    select(func.count()).select_from(event_dead_letters).where(
                        event_dead_letters.c.endpoint == name,
                        event_dead_letters.c.replay_at.is_(None))) or 0)
                replaying = int(await connection.scalar(
                    select(func.count()).select_from(event_dead_letters).where(
                        event_dead_letters.c.endpoint == name,
                        event_dead_letters.c.replay_at.is_not(None))) or 0)
                out.append(EndpointStatus(state, pending, dead, replaying))
        return out

    async def dead_letters(self, name: str, limit: int = 1000
                           ) -> list[tuple[StoredEvent, datetime, str | None]]:
        """Dead letters waiting for an operator, oldest first: event, when it failed, why."""
        rows = await self._dead_letter_rows(name, limit, queued=False)
        return [(_stored(row), _aware(row.failed_at) or utc_now(), row.last_error) for row in rows]

    async def requeue_dead(self, names: Collection[str]) -> int:
        """Queue every dead letter of these endpoints for delivery again."""
        async with self._engines.begin_write() as connection:
            result = await connection.execute(
                update(event_dead_letters)
                .where(event_dead_letters.c.endpoint.in_(list(names)),
                       event_dead_letters.c.replay_at.is_(None))
                .values(replay_at=utc_now())
            )
            await self._retry_now(connection, names)
        return int(result.rowcount or 0)

    async def rewind(self, names: Collection[str]) -> int:
        """Send again every event still retained: cursors go back to the oldest one."""
        async with self._engines.begin_write() as connection:
            oldest = await connection.scalar(select(func.min(events.c.seq)))
            if oldest is None:
                return 0
            result = await connection.execute(
                update(event_endpoints)
                .where(event_endpoints.c.name.in_(list(names)),
                       event_endpoints.c.last_seq >= int(oldest))
                .values(last_seq=int(oldest) - 1)
            )
            await self._retry_now(connection, names)
        return int(result.rowcount or 0)

    async def _retry_now(self, connection: AsyncConnection, names: Collection[str]) -> None:
        await connection.execute(
            update(event_endpoints).where(event_endpoints.c.name.in_(list(names)))
            .values(next_attempt_at=None, failures=0)
        )
