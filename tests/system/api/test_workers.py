"""Several worker processes behind one port must share uploads, blobs and manifests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tests.server import RunningRegistry
from tests.system.api.client import Client, describe, digest_of, random_bytes, range_end, repo_name


def fresh(server: RunningRegistry) -> Client:
    """A client whose every request opens a new connection, so requests spread over workers."""
    api = Client(server.url)
    api.session.headers["Connection"] = "close"
    return api


def processes_in_group(pgid: int) -> int:
    """How many live processes belong to the server's process group (Linux /proc)."""
    count = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            count += 1
    return count


def test_push_once_pull_everywhere(start_registry: Callable[..., RunningRegistry]) -> None:
    server = start_registry(workers=2)
    assert server.process is not None
    if Path("/proc/self/stat").exists():
        assert processes_in_group(server.process.pid) >= 2
    pusher = Client(server.url)
    name = repo_name()
    manifest = pusher.push_image(name, "latest", layers=2)
    for _ in range(30):
        puller = fresh(server)
        response = puller.get(f"/v2/{name}/manifests/latest")
        assert response.status_code == 200, describe(response)
        assert response.content == manifest.body
        for blob in manifest.blobs:
            pulled = puller.get(f"/v2/{name}/blobs/{digest_of(blob)}")
            assert pulled.status_code == 200, describe(pulled)
            assert pulled.content == blob
        assert puller.tags(name) == ["latest"]
        puller.close()


def test_upload_session_spans_workers(start_registry: Callable[..., RunningRegistry]) -> None:
    server = start_registry(workers=2)
    name = repo_name()
    data = random_bytes(40_000)

    def client() -> Client:
        return fresh(server)

    location = client().upload_url(name)
    for start in range(0, len(data), 4000):
        response = client().patch_chunk(location, data[start:start + 4000], start=start)
        assert response.status_code == 202, describe(response)
        assert range_end(response) == start + 3999
        location = client().follow(response.headers["Location"])
        status = client().get(location)
        assert status.status_code == 204, describe(status)
        assert range_end(status) == start + 3999
    digest = digest_of(data)
    done = client().finish_upload(location, digest)
    assert done.status_code == 201, describe(done)
    for _ in range(10):
        assert client().get(f"/v2/{name}/blobs/{digest}").content == data


def test_writes_seen_by_every_worker(start_registry: Callable[..., RunningRegistry]) -> None:
    server = start_registry(workers=2)
    name = repo_name()
    for number in range(8):
        manifest = fresh(server).push_image(name, f"t{number}")
        for _ in range(3):
            assert fresh(server).get(f"/v2/{name}/manifests/t{number}").content == manifest.body
    reader = Client(server.url)
    assert reader.tags(name) == [f"t{number}" for number in range(8)]
    assert reader.delete(f"/v2/{name}/manifests/t0").status_code == 202
    for _ in range(5):
        assert fresh(server).get(f"/v2/{name}/manifests/t0").status_code == 404
