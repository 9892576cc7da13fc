"""kill -9 at any moment loses nothing the registry acknowledged."""

from __future__ import annotations

import random
import signal
import threading
import time
from collections.abc import Callable

import requests

from tests.server import RunningRegistry
from tests.system.api.client import Client, Manifest, describe, digest_of, repo_name

PUSH_SECONDS = 2.0
KILLS = 2


def _push_until(stop: threading.Event, url: str, name: str,
                acknowledged: list[tuple[str, Manifest]]) -> None:
    """Push images until stopped or the server dies; keep what got a 201."""
    client = Client(url)
    try:
        while not stop.is_set():
            tag = f"t{len(acknowledged)}-{random.randrange(1 << 30)}"
            acknowledged.append((tag, client.push_image(name, tag, layers=1)))
    except (requests.ConnectionError, AssertionError):
        pass  # the server was killed mid-request; that push was never acknowledged
    finally:
        client.close()


def test_kill_minus_nine_loses_nothing_acknowledged(
        start_registry: Callable[..., RunningRegistry]) -> None:
    server = start_registry(workers=2)
    name = repo_name("crash")
    acknowledged: list[tuple[str, Manifest]] = []
    for _ in range(KILLS):
        stop = threading.Event()
        pusher = threading.Thread(
            target=_push_until, args=(stop, server.url, name, acknowledged)
        )
        pusher.start()
        time.sleep(PUSH_SECONDS + random.random())
        server.stop(signal.SIGKILL)
        stop.set()
        pusher.join(30)
        server.start()

    assert acknowledged, "no push was acknowledged: the test proved nothing"
    client = Client(server.url)
    try:
        for tag, manifest in acknowledged:
            response = client.get(f"/v2/{name}/manifests/{tag}",
                                  headers={"Accept": manifest.media_type})
            assert response.status_code == 200, describe(response)
            assert response.content == manifest.body
            for content in manifest.blobs:
                blob = client.get(f"/v2/{name}/blobs/{digest_of(content)}")
                assert blob.status_code == 200, describe(blob)
                assert blob.content == content
        tags = client.get(f"/v2/{name}/tags/list").json()["tags"]
        assert {tag for tag, _ in acknowledged} <= set(tags)
    finally:
        client.close()
