"""Read-only mode: every write verb answers 405 UNSUPPORTED, reads go on, no restart needed."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable

import requests

from dockyard.registry.readonly import RECHECK_SECONDS
from tests.server import RunningRegistry
from tests.system.api.client import (
    Client,
    assert_error,
    describe,
    digest_of,
    image_manifest,
    random_bytes,
    repo_name,
    with_params,
)


def dockyard(server: RunningRegistry, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "dockyard", *args, "--config", str(server.config_path)],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def wait_for(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def refused(response: requests.Response) -> bool:
    if response.status_code != 405:
        return False
    errors = assert_error(response, 405, "UNSUPPORTED")
    assert "read-only" in errors[0]["message"], describe(response)
    return True


def test_switched_at_run_time_refuses_every_write(
        start_registry: Callable[..., RunningRegistry]) -> None:
    server = start_registry(workers=2)
    client = Client(server.url)
    name = repo_name()
    image = image_manifest([random_bytes(500)])
    client.push_manifest(name, image, "v1")
    layer = digest_of(image.blobs[-1])
    session = client.upload_url(name)
    fresh = random_bytes(100)

    assert "read-only mode: on" in dockyard(server, "readonly", "on")
    # a worker may take up to a second to notice; the probe is a write that changes nothing
    wait_for(lambda: refused(client.start_upload(name)))
    time.sleep(RECHECK_SECONDS + 0.2)  # by now every worker has re-read the flag
    # every worker agrees, every write verb is refused
    for _ in range(4):
        assert refused(client.put_manifest(name, "v2", image))
        assert refused(client.start_upload(name))
        assert refused(client.push_blob_single_post(name, fresh))
        assert refused(client.mount(repo_name(), layer, name))
        assert refused(client.patch_chunk(session, fresh, start=0))
        assert refused(client.put(with_params(session, [("digest", digest_of(fresh))]),
                                  data=fresh))
        assert refused(client.delete(session))
        assert refused(client.delete(f"/v2/{name}/manifests/v1"))
        assert refused(client.delete(f"/v2/{name}/manifests/{image.digest}"))
        assert refused(client.delete(f"/v2/{name}/blobs/{layer}"))
        # reads are unaffected
        assert client.get(f"/v2/{name}/manifests/v1").content == image.body
        assert client.head(f"/v2/{name}/manifests/v1").status_code == 200
        assert client.get(f"/v2/{name}/blobs/{layer}").content == image.blobs[-1]
        assert client.tags(name) == ["v1"]
        assert client.get("/v2/_catalog").status_code == 200
        assert client.get(session).status_code == 204

    assert "read-only mode: off" in dockyard(server, "readonly", "off")
    wait_for(lambda: client.start_upload(name).status_code == 202)
    time.sleep(RECHECK_SECONDS + 0.2)
    for _ in range(4):
        assert client.put_manifest(name, "v3", image).status_code == 201
    client.close()


def test_configured_read_only_refuses_writes(
        start_registry: Callable[..., RunningRegistry]) -> None:
    server = start_registry({"storage": {"maintenance": {"readonly": {"enabled": True}}}})
    client = Client(server.url)
    name = repo_name()
    errors = assert_error(client.start_upload(name), 405, "UNSUPPORTED")
    assert "storage.maintenance.readonly.enabled" in errors[0]["message"]
    assert refused(client.put_manifest(name, "v1", image_manifest()))
    assert client.get("/v2/").status_code == 200
    assert "read-only mode: on" in dockyard(server, "readonly", "off")
    assert refused(client.start_upload(name))
    client.close()
