"""Everything a client was told is durable survives a restart: content, tags and open uploads."""

from __future__ import annotations

from collections.abc import Callable

from tests.server import RunningRegistry
from tests.system.api.client import (
    Client,
    artifact_manifest,
    assert_error,
    describe,
    digest_of,
    random_bytes,
    range_end,
    repo_name,
)


def test_content_and_uploads_survive_restart(
        start_registry: Callable[..., RunningRegistry]) -> None:
    server = start_registry()
    client = Client(server.url)
    name = repo_name()
    image = client.push_image(name, "latest", layers=2)
    assert client.put_manifest(name, "stable", image).status_code == 201
    signature = artifact_manifest("application/vnd.dockyard.signature.v1", subject=image)
    client.push_manifest(name, signature)
    untagged = client.push_image(name, None)
    deleted = client.push_image(name, "deleted")
    assert client.delete(f"/v2/{name}/manifests/{deleted.digest}").status_code == 202

    data = random_bytes(30_000)
    location = client.upload_url(name)
    first = client.patch_chunk(location, data[:10_000], start=0)
    assert first.status_code == 202, describe(first)
    location = client.follow(first.headers["Location"])
    abandoned = client.upload_url(name)
    cancelled = client.upload_url(name)
    assert client.delete(cancelled).status_code == 204
    client.close()

    server.restart()
    client = Client(server.url)

    # the open session resumes where it stopped
    status = client.get(location)
    assert status.status_code == 204, describe(status)
    assert range_end(status) == 9_999
    second = client.patch_chunk(location, data[10_000:20_000], start=10_000)
    assert second.status_code == 202, describe(second)
    assert range_end(second) == 19_999
    digest = digest_of(data)
    done = client.finish_upload(client.follow(second.headers["Location"]), digest,
                                data[20_000:])
    assert done.status_code == 201, describe(done)
    assert client.get(f"/v2/{name}/blobs/{digest}").content == data
    assert client.get(abandoned).status_code == 204
    assert_error(client.get(cancelled), 404, "BLOB_UPLOAD_UNKNOWN")

    # pushed content, tags and referrers are all still there
    for reference in ("latest", "stable", image.digest):
        response = client.get(f"/v2/{name}/manifests/{reference}")
        assert response.status_code == 200, describe(response)
        assert response.content == image.body
        assert response.headers["Content-Type"] == image.media_type
    assert client.get(f"/v2/{name}/manifests/{untagged.digest}").content == untagged.body
    for blob in image.blobs:
        assert client.get(f"/v2/{name}/blobs/{digest_of(blob)}").content == blob
    assert client.tags(name) == ["latest", "stable"]
    assert_error(client.get(f"/v2/{name}/manifests/{deleted.digest}"), 404, "MANIFEST_UNKNOWN")
    referrers = client.get(f"/v2/{name}/referrers/{image.digest}").json()["manifests"]
    assert [entry["digest"] for entry in referrers] == [signature.digest]
    assert name in client.get("/v2/_catalog").json()["repositories"]

    # and the registry keeps accepting writes
    again = client.push_image(name, "after")
    assert client.get(f"/v2/{name}/manifests/after").content == again.body
    client.close()


def test_restart_twice_with_a_chunked_upload_in_between(
        start_registry: Callable[..., RunningRegistry]) -> None:
    server = start_registry()
    name = repo_name()
    data = random_bytes(3000)
    client = Client(server.url)
    location = client.upload_url(name)
    for start in (0, 1500):
        response = client.patch_chunk(location, data[start:start + 1500], start=start)
        assert response.status_code == 202, describe(response)
        location = client.follow(response.headers["Location"])
        client.close()
        server.restart()
        client = Client(server.url)
    done = client.finish_upload(location, digest_of(data))
    assert done.status_code == 201, describe(done)
    assert client.get(f"/v2/{name}/blobs/{digest_of(data)}").content == data
    client.close()
