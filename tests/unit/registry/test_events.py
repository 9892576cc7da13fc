"""The event recorder: distribution's event documents, and pull sampling."""

from __future__ import annotations

import json
from collections.abc import Sequence

from dockyard.metadata.records import EventRow
from dockyard.registry.events import EventContext, EventRecorder, EventSettings

CONFIG = "sha256:" + "c" * 64
MANIFEST = "sha256:" + "d" * 64


class EventList:
    """An EventLog keeping what it is given, for tests of what the recorder builds."""

    def __init__(self) -> None:
        self.rows: list[EventRow] = []

    async def append(self, rows: Sequence[EventRow]) -> None:
        self.rows.extend(rows)


def test_recorder_builds_distribution_events() -> None:
    recorder = EventRecorder(None)
    context = EventContext(request_id="r1", method="PUT", base_url="http://reg")
    assert recorder.blob_pushed(context, "a/b", CONFIG, 2) == [], "disabled: nothing"

    enabled = EventRecorder(EventList(), EventSettings(source_addr="node:5000"))
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
    none = EventRecorder(EventList(), EventSettings(pull_sample_rate=0.0))
    some = EventRecorder(EventList(), EventSettings(pull_sample_rate=0.5))
    for _ in range(400):
        none.blob_pulled(context, "a/b", CONFIG, 1)
        some.blob_pulled(context, "a/b", CONFIG, 1)
    assert not none._pulls
    assert 100 < len(some._pulls) < 300
