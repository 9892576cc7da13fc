"""The outbox on a migrated SQLite database: atomic recording, cursors, leases, dead letters."""

from __future__ import annotations

import asyncio
import hmac
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import pytest

from dockyard.metadata import migrate
from dockyard.metadata.engine import create_engines
from dockyard.metadata.outbox import EventRow, Outbox, StoredEvent
from dockyard.metadata.records import ManifestWrite, MissingReferences
from dockyard.metadata.store import MetadataStore
from dockyard.notifications.delivery import Endpoint, render, signature
from dockyard.registry.events import EventContext, EventRecorder, EventSettings

T = TypeVar("T")
CONFIG = "sha256:" + "c" * 64
MANIFEST = "sha256:" + "d" * 64


def run(tmp_path: Path, scenario: Callable[[MetadataStore, Outbox], Awaitable[T]]) -> T:
    async def main() -> T:
        engines = create_engines(f"sqlite+aiosqlite:///{tmp_path / 'meta.db'}")
        await migrate.upgrade(engines.write)
        store = MetadataStore(engines)
        try:
            return await scenario(store, Outbox(engines))
        finally:
            await store.close()

    return asyncio.run(main())


def row(action: str = "push", media_type: str | None = "application/octet-stream",
        age: float = 0.0) -> EventRow:
    created = datetime.now(UTC) - timedelta(seconds=age)
    event_id = f"id-{created.timestamp()}-{action}-{id(created)}"
    return EventRow(event_id, action, media_type, created,
                    json.dumps({"id": event_id, "action": action}))


def test_a_failed_manifest_push_records_no_event(tmp_path: Path) -> None:
    async def scenario(store: MetadataStore, outbox: Outbox) -> list[StoredEvent]:
        write = ManifestWrite(MANIFEST, "application/vnd.oci.image.manifest.v1+json", b"{}",
                              None, None, None, blob_digests=(CONFIG,), tags=("v1",))
        with pytest.raises(MissingReferences):
            await store.put_manifest("a/b", write, events=[row()])
        await store.link_blob("a/b", CONFIG, 2)
        await store.put_manifest("a/b", write, events=[row(), row()])
        assert not await store.delete_tag("a/b", "nope", events=[row("delete")])
        assert await store.delete_tag("a/b", "v1", events=[row("delete")])
        return await outbox.pending(0, 100)

    events = run(tmp_path, scenario)
    assert [e.seq for e in events] == [1, 2, 3]
    assert [e.action for e in events] == ["push", "push", "delete"]


def test_new_endpoints_start_at_the_head_and_leases_exclude(tmp_path: Path) -> None:
    async def scenario(store: MetadataStore, outbox: Outbox) -> None:
        await outbox.append([row(), row()])
        await outbox.ensure_endpoints(["ci"])
        await outbox.ensure_endpoints(["ci", "audit"])
        first = await outbox.take_lease("ci", "a", 30)
        assert first is not None and first.last_seq == 2
        assert await outbox.take_lease("ci", "b", 30) is None
        assert await outbox.take_lease("audit", "b", 30) is not None
        assert not await outbox.advance("ci", "b", 3, 1)
        await outbox.release_lease("ci", "a")
        assert await outbox.take_lease("ci", "b", 0.01) is not None
        await asyncio.sleep(0.05)
        assert await outbox.take_lease("ci", "a", 30) is not None, "an expired lease is free"

    run(tmp_path, scenario)


def test_old_events_go_to_dead_letters_and_replay(tmp_path: Path) -> None:
    async def scenario(store: MetadataStore, outbox: Outbox) -> None:
        await outbox.ensure_endpoints(["ci"])
        await outbox.append([row(age=100), row(age=100), row(age=0)])
        state = await outbox.take_lease("ci", "w", 30)
        assert state is not None
        cutoff = datetime.now(UTC) - timedelta(seconds=50)
        assert await outbox.expire("ci", "w", state.last_seq, cutoff, "HTTP 500") == 2
        (status,) = await outbox.status(["ci"], {})
        assert (status.pending, status.dead, status.state.last_seq) == (1, 2, 2)
        assert [e.seq for e, _, _ in await outbox.dead_letters("ci")] == [1, 2]
        assert await outbox.prune(["ci"], datetime.now(UTC)) == 0, "dead letters are kept"
        assert await outbox.requeue_dead(["ci"]) == 2
        replays = await outbox.replays("ci", 10)
        assert [e.seq for e, _ in replays] == [1, 2]
        assert await outbox.replayed("ci", "w", [1, 2])
        (status,) = await outbox.status(["ci"], {})
        assert (status.dead, status.replaying, status.state.delivered) == (0, 0, 2)
        assert await outbox.advance("ci", "w", 3, 1)
        assert await outbox.prune(["ci"], datetime.now(UTC) + timedelta(seconds=1)) == 3
        assert await outbox.pending(0, 10) == []

    run(tmp_path, scenario)


def test_rewind_sends_retained_events_again_and_status_honours_filters(tmp_path: Path) -> None:
    async def scenario(store: MetadataStore, outbox: Outbox) -> None:
        await outbox.ensure_endpoints(["ci"])
        await outbox.append([row("push"), row("pull"), row("delete", None)])
        (status,) = await outbox.status(["ci"], {"ci": ({"pull"}, {"application/x"})})
        assert status.pending == 2
        assert await outbox.take_lease("ci", "w", 30) is not None
        assert await outbox.advance("ci", "w", 3, 2)
        assert await outbox.rewind(["ci"]) == 1
        (status,) = await outbox.status(["ci"], {})
        assert status.pending == 3

    run(tmp_path, scenario)


def test_recorder_builds_distribution_events() -> None:
    recorder = EventRecorder(None)
    context = EventContext(request_id="r1", method="PUT", base_url="http://reg")
    assert recorder.blob_pushed(context, "a/b", CONFIG, 2) == [], "disabled: nothing"

    enabled = EventRecorder(Outbox.__new__(Outbox), EventSettings(source_addr="node:5000"))
    (event,) = enabled.blob_pushed(context, "a/b", CONFIG, 2)
    document = json.loads(event.payload)
    assert document["target"] == {
        "mediaType": "application/octet-stream", "size": 2, "length": 2, "digest": CONFIG,
        "repository": "a/b", "url": f"http://reg/v2/a/b/blobs/{CONFIG}",
    }
    assert document["request"]["id"] == "r1"
    assert document["source"]["addr"] == "node:5000"
    assert document["actor"] == {}
    assert document["timestamp"].endswith("Z")
    assert len(enabled.manifest_pushed(context, "a/b", MANIFEST, "m", 2, ["x", "y"], [])) == 2


def test_pull_sampling() -> None:
    context = EventContext()
    none = EventRecorder(Outbox.__new__(Outbox), EventSettings(pull_sample_rate=0.0))
    some = EventRecorder(Outbox.__new__(Outbox), EventSettings(pull_sample_rate=0.5))
    for _ in range(400):
        none.blob_pulled(context, "a/b", CONFIG, 1)
        some.blob_pulled(context, "a/b", CONFIG, 1)
    assert not none._pulls
    assert 100 < len(some._pulls) < 300


def test_envelopes_backoff_and_signature() -> None:
    stored = [StoredEvent(1, "e1", "push", None, datetime.now(UTC),
                          json.dumps({"id": "e1", "action": "push", "timestamp": "t",
                                      "target": {"repository": "a/b"}}))]
    body, media_type = render(Endpoint("ci", "http://x"), stored)
    assert media_type == "application/vnd.docker.distribution.events.v1+json"
    assert json.loads(body) == {"events": [json.loads(stored[0].payload)]}
    body, media_type = render(Endpoint("ci", "http://x", format="cloudevents"), stored)
    (cloud,) = json.loads(body)
    assert media_type == "application/cloudevents-batch+json"
    assert (cloud["specversion"], cloud["id"], cloud["subject"]) == ("1.0", "e1", "a/b")
    endpoint = Endpoint("ci", "http://x", backoff=1.0, max_backoff=5.0)
    assert [endpoint.delay(n) for n in (1, 2, 3, 4, 50)] == [1.0, 2.0, 4.0, 5.0, 5.0]
    assert signature(b"k", b"body") == "sha256=" + hmac.new(b"k", b"body", "sha256").hexdigest()
