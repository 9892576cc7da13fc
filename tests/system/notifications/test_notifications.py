"""Webhook notifications end to end: real Dockyard servers, a real HTTP receiver."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests
import yaml

from dockyard.app.notifications import endpoints
from dockyard.cli.events import status_document
from dockyard.config import load_config
from dockyard.metadata.engine import create_engines
from dockyard.metadata.outbox import Outbox, StoredEvent
from tests.server import RunningRegistry, free_port
from tests.system.api.client import (
    OCI_CONFIG,
    OCI_LAYER,
    OCI_MANIFEST,
    Client,
    digest_of,
    image_manifest,
    random_bytes,
    repo_name,
)
from tests.system.notifications.receiver import Receiver, running_receiver
from tests.system.observability.conftest import Samples, parse, value, wait_for

ENVELOPE = "application/vnd.docker.distribution.events.v1+json"
BLOB = "application/octet-stream"
StartRegistry = Callable[..., RunningRegistry]


def notifications(receiver: Receiver, extra: dict[str, Any] | None = None,
                  **endpoint: Any) -> dict[str, Any]:
    """Fast retries and a short lease, so failures and restarts resolve within seconds."""
    config: dict[str, Any] = {
        "lease": "1s",
        "endpoints": [{
            "name": "ci", "url": receiver.url, "timeout": "1s", "backoff": "50ms",
            "maxbackoff": "200ms", **endpoint,
        }],
    }
    return {"notifications": {**config, **(extra or {})}}


def actions(events: list[dict[str, Any]]) -> list[tuple[str, str | None]]:
    return [(e["action"], e["target"].get("mediaType")) for e in events]


def events_cli(server: RunningRegistry, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dockyard", "events", "--config", str(server.config_path), *args],
        capture_output=True, text=True, timeout=30, check=True,
    )


def status(server: RunningRegistry) -> dict[str, Any]:
    """What `dockyard events status --json` reports, computed in this process (faster)."""
    config = load_config(server.config_path, environ={})

    async def main() -> dict[str, Any]:
        outbox = Outbox(create_engines(config.database_url()))
        try:
            found = await outbox.status(
                [e.name for e in endpoints(config)],
                {e.name: (e.ignored_actions, e.ignored_media_types) for e in endpoints(config)})
        finally:
            await outbox.close()
        return {item.state.name: status_document(item, 10) for item in found}

    return asyncio.run(main())


def cli_status(server: RunningRegistry) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(events_cli(server, "status", "--json").stdout)
    return {item["endpoint"]: item for item in document["endpoints"]}


def test_every_action_arrives_in_distributions_envelope(start_registry: StartRegistry) -> None:
    with running_receiver() as receiver:
        server = start_registry(notifications(
            receiver, {"events": {"includereferences": True}}))
        client = Client(server.url)
        name, other = repo_name(), repo_name()
        layer = random_bytes(300)
        manifest = image_manifest([layer])
        client.push_manifest(name, manifest, "v1")
        assert client.mount(other, manifest.document["layers"][0]["digest"], name
                            ).status_code == 201
        assert client.get(client.manifest_path(name, "v1"),
                          headers={"Accept": OCI_MANIFEST}).status_code == 200
        assert client.head(client.manifest_path(name, "v1")).status_code == 200
        layer_digest = manifest.document["layers"][0]["digest"]
        assert client.get(client.blob_path(name, layer_digest)).status_code == 200
        assert client.delete(client.manifest_path(name, "v1")).status_code == 202
        assert client.delete(client.manifest_path(name, manifest.digest)).status_code == 202
        assert client.delete(client.blob_path(other, layer_digest)).status_code == 202

        received = receiver.wait_for(lambda got: len(got) >= 9)
        # Pull events are buffered (best-effort, ~100 ms), so they may follow later changes.
        pulls = [e for e in received if e["action"] == "pull"]
        events = [e for e in received if e["action"] != "pull"]
        assert actions(events) == [
            ("push", BLOB), ("push", BLOB), ("push", OCI_MANIFEST), ("mount", BLOB),
            ("delete", None), ("delete", None), ("delete", BLOB),
        ]
        assert sorted(actions(pulls)) == [("pull", BLOB), ("pull", OCI_MANIFEST)]
        pulled = {e["target"]["mediaType"]: e["target"] for e in pulls}
        assert pulled[OCI_MANIFEST]["tag"] == "v1"
        assert pulled[BLOB]["digest"] == layer_digest
        assert all(d.headers["Content-Type"] == ENVELOPE for d in receiver.deliveries)
        push = events[2]
        assert set(push) == {"id", "timestamp", "action", "target", "request", "actor", "source"}
        target = push["target"]
        assert target["digest"] == manifest.digest
        assert target["size"] == target["length"] == manifest.size
        assert target["repository"] == name
        assert target["tag"] == "v1"
        assert target["url"] == f"{server.url}/v2/{name}/manifests/{manifest.digest}"
        assert {ref["mediaType"] for ref in target["references"]} == {OCI_CONFIG, OCI_LAYER}
        request = push["request"]
        assert request["method"] == "PUT"
        assert request["host"] == server.host
        assert request["addr"].startswith("127.0.0.1:")
        assert request["useragent"].startswith("python-requests")
        assert request["id"]
        assert push["source"]["instanceID"]
        assert events[3]["target"]["fromRepository"] == name
        assert events[4]["target"] == {"repository": name, "tag": "v1"}
        assert events[5]["target"] == {"repository": name, "digest": manifest.digest}
        assert events[6]["target"]["digest"] == layer_digest
        assert len({e["id"] for e in received}) == len(received) == 9

        ci = cli_status(server)["ci"]
        assert ci["pending"] == 0 and ci["delivered"] == 9 and ci["failed"] == 0


def test_request_id_reaches_the_event(start_registry: StartRegistry) -> None:
    with running_receiver() as receiver:
        server = start_registry(notifications(receiver))
        client = Client(server.url)
        data = random_bytes(100)
        response = client.push_blob_single_post(repo_name(), data)
        assert response.status_code == 201
        (event,) = receiver.wait_for(lambda got: len(got) == 1)
        assert event["request"]["id"] == response.headers["X-Request-Id"]
        assert event["request"]["method"] == "POST"


def test_a_manifest_pushed_by_sha512_is_reported_by_its_sha512_digest(
        start_registry: StartRegistry) -> None:
    with running_receiver() as receiver:
        server = start_registry(notifications(receiver, ignoredmediatypes=[BLOB]))
        client = Client(server.url)
        name = repo_name()
        manifest = image_manifest([random_bytes(100)])
        client.push_contents(name, manifest)
        sha512 = digest_of(manifest.body, "sha512")
        client.push_manifest(name, manifest, sha512, params=[("tag", "t")])
        assert client.get(client.manifest_path(name, "t")).status_code == 200
        push, pull = receiver.wait_for(lambda got: len(got) == 2)
        assert (push["action"], pull["action"]) == ("push", "pull")
        assert push["target"]["digest"] == pull["target"]["digest"] == sha512
        assert push["target"]["url"] == f"{server.url}/v2/{name}/manifests/{sha512}"


def test_failing_receiver_gets_the_events_once_it_accepts(
        start_registry: StartRegistry) -> None:
    with running_receiver(fail=4) as receiver:
        server = start_registry(notifications(receiver))
        client = Client(server.url)
        name = repo_name()
        digests = [client.push_blob(name, random_bytes(64)) for _ in range(3)]
        events = receiver.wait_for(lambda got: len(got) == 3)
        assert [e["target"]["digest"] for e in events] == digests
        assert receiver.attempts >= 5
        ci = status(server)["ci"]
        assert ci["failures"] == 0 and ci["pending"] == 0
        assert ci["last_error"] == "HTTP 503 Service Unavailable"


def test_backlog_survives_sigkill_and_arrives_after_restart(
        start_registry: StartRegistry) -> None:
    with running_receiver(fail=10_000) as receiver:
        server = start_registry(notifications(receiver), workers=2)
        client = Client(server.url)
        name = repo_name()
        pushed = [client.push_image(name, f"v{i}").digest for i in range(3)]
        assert status(server)["ci"]["pending"] == 9
        server.stop(signal.SIGKILL)
        receiver.fail = 0
        server.start()
        events = receiver.wait_for(lambda got: len(got) == 9, timeout=15)
        manifests = [e["target"]["digest"] for e in events if e["target"]["mediaType"]
                     == OCI_MANIFEST]
        assert manifests == pushed
        assert status(server)["ci"]["pending"] == 0


def test_receiver_verifies_the_hmac_signature(start_registry: StartRegistry) -> None:
    with running_receiver(secret=b"s3cret") as receiver:
        server = start_registry(notifications(receiver, secret="s3cret"))
        Client(server.url).push_blob(repo_name(), random_bytes(10))
        receiver.wait_for(lambda got: len(got) == 1)
        assert receiver.deliveries[0].headers["X-Dockyard-Signature"].startswith("sha256=")


def test_wrong_secret_is_refused_and_retried(start_registry: StartRegistry) -> None:
    with running_receiver(secret=b"right") as receiver:
        server = start_registry(notifications(receiver, secret="wrong"))
        Client(server.url).push_blob(repo_name(), random_bytes(10))
        deadline = time.monotonic() + 10
        while receiver.attempts < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert receiver.attempts >= 3 and not receiver.deliveries
        assert status(server)["ci"]["last_error"] == "HTTP 401 Unauthorized"


def test_ignored_media_types_and_actions_are_not_sent(start_registry: StartRegistry) -> None:
    with running_receiver() as receiver:
        server = start_registry(notifications(
            receiver, ignoredmediatypes=[BLOB], ignore={"actions": ["pull"]}))
        client = Client(server.url)
        name = repo_name()
        manifest = client.push_image(name, "v1")
        assert client.get(client.manifest_path(name, "v1"),
                          headers={"Accept": OCI_MANIFEST}).status_code == 200
        assert client.delete(client.manifest_path(name, "v1")).status_code == 202
        events = receiver.wait_for(lambda got: len(got) == 2)
        assert actions(events) == [("push", OCI_MANIFEST), ("delete", None)]
        assert events[0]["target"]["digest"] == manifest.digest
        time.sleep(0.5)
        assert len(receiver.events()) == 2
        assert status(server)["ci"]["pending"] == 0


def test_slow_receiver_does_not_slow_pushes(start_registry: StartRegistry) -> None:
    with running_receiver(delay=6.0) as receiver:
        server = start_registry(notifications(receiver, timeout="10s"))
        client = Client(server.url)
        name = repo_name()
        slowest = 0.0
        for i in range(5):
            started = time.monotonic()
            client.push_image(name, f"v{i}")
            slowest = max(slowest, time.monotonic() - started)
        # A push waiting on its deliveries would take 6 s per event, 18 s per image.
        assert slowest < 6.0, f"a push took {slowest:.1f}s behind a 6 s receiver"
        receiver.wait_for(lambda got: len(got) == 15, timeout=30)


def test_pull_events_can_be_disabled(start_registry: StartRegistry) -> None:
    with running_receiver() as receiver:
        server = start_registry(notifications(
            receiver, {"events": {"pulls": {"disabled": True}}}))
        client = Client(server.url)
        name = repo_name()
        client.push_image(name, "v1")
        for _ in range(5):
            assert client.get(client.manifest_path(name, "v1"),
                              headers={"Accept": OCI_MANIFEST}).status_code == 200
        client.push_blob(name, random_bytes(20))
        events = receiver.wait_for(lambda got: len(got) == 4)
        assert "pull" not in {e["action"] for e in events}


def test_no_endpoints_records_nothing(start_registry: StartRegistry) -> None:
    server = start_registry({"notifications": {"endpoints": [
        {"name": "off", "url": "http://127.0.0.1:9/", "disabled": True}]}})
    client = Client(server.url)
    name = repo_name()
    client.push_image(name, "v1")
    assert client.get(client.manifest_path(name, "v1")).status_code == 200
    time.sleep(0.3)
    assert status(server) == {}
    config = load_config(server.config_path, environ={})

    async def recorded() -> list[StoredEvent]:
        outbox = Outbox(create_engines(config.database_url()))
        try:
            return await outbox.pending(0, 1)
        finally:
            await outbox.close()

    assert asyncio.run(recorded()) == []


def test_old_events_are_dead_lettered_listed_and_replayed(start_registry: StartRegistry) -> None:
    with running_receiver(fail=10_000) as receiver:
        server = start_registry(notifications(receiver, maxage="1s"))
        digest = Client(server.url).push_blob(repo_name(), random_bytes(30))
        deadline = time.monotonic() + 15
        while status(server)["ci"]["failed"] != 1:
            assert time.monotonic() < deadline, status(server)
            time.sleep(0.2)
        dead = json.loads(events_cli(server, "dead", "--endpoint", "ci", "--json").stdout)
        (letter,) = dead["events"]
        assert letter["event"]["target"]["digest"] == digest
        assert letter["last_error"] == "HTTP 503 Service Unavailable"
        assert not receiver.deliveries
        receiver.fail = 0
        replay = events_cli(server, "replay", "--endpoint", "ci", "--dead")
        assert "1 dead-lettered events queued" in replay.stdout
        (event,) = receiver.wait_for(lambda got: len(got) == 1)
        assert event["id"] == letter["id"]
        ci = status(server)["ci"]
        assert ci["failed"] == 0 and ci["replaying"] == 0 and ci["delivered"] == 1


def test_cloudevents_format(start_registry: StartRegistry) -> None:
    with running_receiver() as receiver:
        server = start_registry(notifications(receiver, format="cloudevents"))
        name = repo_name()
        digest = Client(server.url).push_blob(name, random_bytes(30))
        deadline = time.monotonic() + 10
        while not receiver.deliveries:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        delivery = receiver.deliveries[0]
        assert delivery.headers["Content-Type"] == "application/cloudevents-batch+json"
        (cloud,) = delivery.document
        assert cloud["type"] == "io.dockyard.registry.push"
        assert cloud["subject"] == name
        assert cloud["data"]["target"]["digest"] == digest


def test_endpoint_config_errors_stop_start_up(tmp_path: Path) -> None:
    config = {"version": 0.1, "storage": {"filesystem": {"rootdirectory": str(tmp_path)}},
              "notifications": {"endpoints": [
                  {"name": "ci", "url": "ftp://example.com", "timeout": "soon", "bogus": 1},
                  {"name": "ci", "url": "http://example.com"},
              ]}}
    path = tmp_path / "config.yml"
    path.write_text(yaml.safe_dump(config))
    result = subprocess.run(
        [sys.executable, "-m", "dockyard", "serve", "--config", str(path)],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2
    assert "notifications.endpoints[0].url: not an http(s) URL" in result.stderr
    assert "notifications.endpoints[0].timeout: not a duration" in result.stderr
    assert "notifications.endpoints[0].bogus: unknown key" in result.stderr


def test_delivery_metrics(start_registry: StartRegistry) -> None:
    debug = f"127.0.0.1:{free_port()}"
    with running_receiver(fail=2) as receiver:
        server = start_registry({
            **notifications(receiver),
            "http": {"debug": {"addr": debug, "prometheus": {"enabled": True}}},
        }, workers=2)
        Client(server.url).push_blob(repo_name(), random_bytes(30))
        receiver.wait_for(lambda got: len(got) == 1)

        def sent() -> Samples:
            response = requests.get(f"http://{debug}/metrics", timeout=10)
            assert response.status_code == 200
            samples = parse(response.text)
            ok = value(samples, "dockyard_notifications_sent_total", endpoint="ci", result="ok")
            return samples if ok == 1 else {}

        samples = wait_for(sent, message="notifications_sent_total")
        assert value(samples, "dockyard_notifications_sent_total", endpoint="ci",
                     result="error") == 2
        assert value(samples, "dockyard_notifications_pending", endpoint="ci") == 0


def test_several_workers_deliver_each_event_once_in_order(
        start_registry: StartRegistry) -> None:
    with running_receiver() as receiver:
        server = start_registry(notifications(receiver), workers=2)
        client = Client(server.url)
        name = repo_name()
        digests = [client.push_blob(name, random_bytes(40)) for _ in range(12)]
        events = receiver.wait_for(lambda got: len(got) == 12)
        assert [e["target"]["digest"] for e in events] == digests
        raw = [event for d in receiver.deliveries for event in d.document["events"]]
        assert len(raw) == 12, "one worker at a time holds the endpoint: no repeats"


def test_sighup_switches_endpoints(start_registry: StartRegistry) -> None:
    with running_receiver() as first, running_receiver() as second:
        server = start_registry(notifications(first))
        client = Client(server.url)
        name = repo_name()
        before = client.push_blob(name, random_bytes(20))
        first.wait_for(lambda got: len(got) == 1)

        server.config["notifications"]["endpoints"][0]["url"] = second.url
        server.config_path.write_text(yaml.safe_dump(server.config))
        done = server.log_text().count("reload: done")
        assert server.process is not None
        server.process.send_signal(signal.SIGHUP)
        wait_for(lambda: server.log_text().count("reload: done") > done,
                 message="reload to finish")

        digest = client.push_blob(name, random_bytes(30))
        got = second.wait_for(lambda got: any(e["target"]["digest"] == digest for e in got))
        # Delivery is at least once: the first event goes again to the new address when the
        # reload came between its receipt and the endpoint's cursor moving past it.
        assert {event["target"]["digest"] for event in got} <= {before, digest}
        assert len(first.events()) == 1
