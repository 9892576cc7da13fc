"""Delivery's envelopes (distribution and CloudEvents), backoff and signatures."""

from __future__ import annotations

import hmac
import json
from datetime import UTC, datetime

from dockyard.metadata.outbox import StoredEvent
from dockyard.notifications.delivery import Endpoint, render, signature


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
