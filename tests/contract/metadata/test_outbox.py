"""The event outbox: events commit with the change they describe; cursors, leases, dead letters."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import pytest

from dockyard.metadata.records import EventRow, MissingReferences
from tests.contract.metadata.conftest import Implementation, Stores
from tests.contract.metadata.kit import CONFIG, LAYER, digest, link, manifest


def row(action: str = "push", media_type: str | None = "application/octet-stream",
        age: float = 0.0) -> EventRow:
    created = datetime.now(UTC) - timedelta(seconds=age)
    event_id = f"id-{created.timestamp()}-{action}-{id(created)}"
    return EventRow(event_id, action, media_type, created,
                    json.dumps({"id": event_id, "action": action}))


def test_events_commit_with_their_change_or_not_at_all(stores: Implementation) -> None:
    async def scenario(s: Stores) -> None:
        write = manifest(digest("d"), tags=("v1",))
        with pytest.raises(MissingReferences):
            await s.metadata.put_manifest("a/b", write, events=[row()])
        await link(s.metadata, "a/b", CONFIG, 2)
        await s.metadata.put_manifest("a/b", write, events=[row(), row()])
        assert not await s.metadata.delete_tag("a/b", "nope", events=[row("delete")])
        assert await s.metadata.delete_tag("a/b", "v1", events=[row("delete")])
        assert await s.metadata.mount_blob("c", LAYER, "a/b", events=[row("mount")]) is None
        assert await s.metadata.mount_blob("c", CONFIG, "a/b", events=[row("mount")]) == 2
        assert not await s.metadata.unlink_blob("c", LAYER, events=[row("delete")])
        assert await s.metadata.unlink_blob("c", CONFIG, events=[row("delete")])
        await s.metadata.complete_upload("u", "a/b", LAYER, 1, has_row=False,
                                         events=[row()])
        assert await s.metadata.delete_manifest("a/b", digest("d"), events=[row("delete")])
        assert not await s.metadata.delete_manifest("a/b", digest("d"),
                                                    events=[row("delete")])
        events = await s.outbox.pending(0, 100)
        assert [e.seq for e in events] == list(range(1, 8))
        assert [e.action for e in events] == [
            "push", "push", "delete", "mount", "delete", "push", "delete"]

    stores.run(scenario)


def test_new_endpoints_start_at_the_head_and_leases_exclude(stores: Implementation) -> None:
    async def scenario(s: Stores) -> None:
        await s.outbox.append([row(), row()])
        await s.outbox.ensure_endpoints(["ci"])
        await s.outbox.ensure_endpoints(["ci", "audit"])
        first = await s.outbox.take_lease("ci", "a", 30)
        assert first is not None and first.last_seq == 2
        assert await s.outbox.take_lease("ci", "b", 30) is None
        assert await s.outbox.take_lease("audit", "b", 30) is not None
        assert not await s.outbox.advance("ci", "b", 3, 1)
        await s.outbox.release_lease("ci", "a")
        assert await s.outbox.take_lease("ci", "b", 0.01) is not None
        await asyncio.sleep(0.05)
        assert await s.outbox.take_lease("ci", "a", 30) is not None, "an expired lease is free"

    stores.run(scenario)


def test_old_events_go_to_dead_letters_and_replay(stores: Implementation) -> None:
    async def scenario(s: Stores) -> None:
        await s.outbox.ensure_endpoints(["ci"])
        await s.outbox.append([row(age=100), row(age=100), row(age=0)])
        state = await s.outbox.take_lease("ci", "w", 30)
        assert state is not None
        cutoff = datetime.now(UTC) - timedelta(seconds=50)
        assert await s.outbox.expire("ci", "w", state.last_seq, cutoff, "HTTP 500") == 2
        (status,) = await s.outbox.status(["ci"], {})
        assert (status.pending, status.dead, status.state.last_seq) == (1, 2, 2)
        assert [e.seq for e, _, _ in await s.outbox.dead_letters("ci")] == [1, 2]
        assert await s.outbox.prune(["ci"], datetime.now(UTC)) == 0, "dead letters are kept"
        assert await s.outbox.requeue_dead(["ci"]) == 2
        assert await s.outbox.has_work("ci", 3), "queued replays are work"
        replays = await s.outbox.replays("ci", 10)
        assert [e.seq for e, _ in replays] == [1, 2]
        assert await s.outbox.replayed("ci", "w", [1, 2])
        assert not await s.outbox.has_work("ci", 3)
        (status,) = await s.outbox.status(["ci"], {})
        assert (status.dead, status.replaying, status.state.delivered) == (0, 0, 2)
        assert await s.outbox.advance("ci", "w", 3, 1)
        assert await s.outbox.prune(["ci"], datetime.now(UTC) + timedelta(seconds=1)) == 3
        assert await s.outbox.pending(0, 10) == []

    stores.run(scenario)


def test_rewind_sends_retained_events_again_and_status_honours_filters(
        stores: Implementation) -> None:
    async def scenario(s: Stores) -> None:
        await s.outbox.ensure_endpoints(["ci"])
        await s.outbox.append([row("push"), row("pull"), row("delete", None)])
        (status,) = await s.outbox.status(["ci"], {"ci": ({"pull"}, {"application/x"})})
        assert status.pending == 2
        assert await s.outbox.pending_count(0, {"pull"}, {"application/octet-stream"}) == 1
        assert await s.outbox.take_lease("ci", "w", 30) is not None
        assert await s.outbox.advance("ci", "w", 3, 2)
        assert await s.outbox.rewind(["ci"]) == 1
        (status,) = await s.outbox.status(["ci"], {})
        assert status.pending == 3

    stores.run(scenario)
