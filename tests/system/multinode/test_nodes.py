"""Several nodes behind one address: whatever one node did, the others see at once."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from urllib.parse import urlsplit

import requests
from sqlalchemy.engine import make_url

from tests.backends import POSTGRES_HOST, POSTGRES_PORT, S3_CHUNK_SIZE, Services
from tests.proxy import CuttableProxy
from tests.system.api.client import (
    Client,
    assert_error,
    describe,
    digest_of,
    random_bytes,
    range_end,
    repo_name,
    with_params,
)
from tests.system.multinode.conftest import Cluster


def _path(location: str) -> str:
    """A Location as a path, so the next request may go to any node."""
    parts = urlsplit(location)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def test_chunked_upload_spans_both_nodes(cluster: Cluster) -> None:
    clients = [Client(node.url) for node in cluster.nodes]
    name = repo_name()
    data = random_bytes(2 * S3_CHUNK_SIZE + 300_000)
    step = 1_000_000
    location = _path(clients[0].upload_url(name))
    for number, start in enumerate(range(0, len(data), step)):
        client = clients[number % 2]
        response = client.patch_chunk(location, data[start:start + step], start=start)
        assert response.status_code == 202, describe(response)
        assert range_end(response) == min(start + step, len(data)) - 1
        location = _path(response.headers["Location"])
        status = clients[(number + 1) % 2].get(location)
        assert status.status_code == 204 and range_end(status) == range_end(response)
    done = clients[1].finish_upload(location, digest_of(data))
    assert done.status_code == 201, describe(done)
    for client in clients:
        blob = client.get(f"/v2/{name}/blobs/{digest_of(data)}")
        assert blob.status_code == 200 and blob.content == data
        part = client.get(f"/v2/{name}/blobs/{digest_of(data)}",
                          headers={"Range": f"bytes={S3_CHUNK_SIZE - 2}-{S3_CHUNK_SIZE + 1}"})
        assert part.status_code == 206 and part.content == data[S3_CHUNK_SIZE - 2:][:4]


def test_push_on_one_pull_list_delete_on_the_other(cluster: Cluster) -> None:
    first, second = (Client(node.url) for node in cluster.nodes)
    name = repo_name()
    manifest = first.push_image(name, "v1", layers=2)
    pulled = second.get(f"/v2/{name}/manifests/v1")
    assert pulled.status_code == 200 and pulled.content == manifest.body
    for blob in manifest.blobs:
        assert second.get(f"/v2/{name}/blobs/{digest_of(blob)}").content == blob
    assert second.tags(name) == ["v1"]
    catalog = second.get("/v2/_catalog", params={"n": "1000"}).json()["repositories"]
    assert name in catalog
    assert second.delete(f"/v2/{name}/manifests/{manifest.digest}").status_code == 202
    assert_error(first.get(f"/v2/{name}/manifests/v1"), 404, "MANIFEST_UNKNOWN")
    assert_error(first.get(f"/v2/{name}/manifests/{manifest.digest}"), 404, "MANIFEST_UNKNOWN")


def test_tag_moves_are_seen_at_once_everywhere(cluster: Cluster) -> None:
    clients = [Client(node.url) for node in cluster.nodes]
    name = repo_name()
    for round_number in range(6):
        writer = clients[round_number % 2]
        manifest = writer.push_image(name, "moving")
        for reader in clients:  # read after write, on both nodes, with no delay
            got = reader.get(f"/v2/{name}/manifests/moving")
            assert got.status_code == 200 and got.content == manifest.body
            assert reader.head(f"/v2/{name}/manifests/moving").headers[
                "Docker-Content-Digest"] == manifest.digest
    assert clients[0].delete(f"/v2/{name}/manifests/moving").status_code == 202
    assert_error(clients[1].get(f"/v2/{name}/manifests/moving"), 404, "MANIFEST_UNKNOWN")
    assert clients[1].tags(name) == []


def test_concurrent_pushes_to_one_repository(cluster: Cluster) -> None:
    name = repo_name()
    failures: list[str] = []

    def push(node_index: int, tag: str) -> None:
        client = Client(cluster.nodes[node_index].url)
        try:
            client.push_image(name, tag, layers=2)
        except AssertionError as exc:
            failures.append(f"{tag}: {exc}")
        finally:
            client.close()

    tags = [f"t{number:02d}" for number in range(12)]
    threads = [threading.Thread(target=push, args=(number % 2, tag))
               for number, tag in enumerate(tags)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    for node in cluster.nodes:
        assert Client(node.url).tags(name) == tags


def test_upload_resumes_on_another_node_after_a_kill(cluster: Cluster) -> None:
    doomed, survivor = cluster.add(), cluster.nodes[0]
    name = repo_name()
    data = random_bytes(S3_CHUNK_SIZE + 2_000_000)
    half = S3_CHUNK_SIZE + 500_000
    client = Client(doomed.url)
    location = _path(client.upload_url(name))
    response = client.patch_chunk(location, data[:half], start=0)
    assert response.status_code == 202, describe(response)
    doomed.stop(signal.SIGKILL)

    other = Client(survivor.url)
    status = other.get(_path(response.headers["Location"]))
    assert status.status_code == 204, describe(status)
    resume_at = range_end(status) + 1
    assert resume_at == half
    rest = other.patch_chunk(_path(status.headers["Location"]), data[resume_at:],
                             start=resume_at)
    assert rest.status_code == 202, describe(rest)
    done = other.finish_upload(_path(rest.headers["Location"]), digest_of(data))
    assert done.status_code == 201, describe(done)
    assert other.get(f"/v2/{name}/blobs/{digest_of(data)}").content == data


def test_database_outage_answers_503_then_recovers(cluster: Cluster) -> None:
    proxy = CuttableProxy(POSTGRES_HOST, POSTGRES_PORT)
    through_proxy = make_url(cluster.config["database"]["url"]).set(
        host="127.0.0.1", port=proxy.port)
    node = cluster.add({"database": {
        "url": through_proxy.render_as_string(hide_password=False),
        "connect_timeout": "2s", "statement_timeout": "3s",
    }})
    client = Client(node.url)
    name = repo_name()
    manifest = client.push_image(name, "v1")
    proxy.cut()
    try:
        for path in (f"/v2/{name}/manifests/v1", f"/v2/{name}/tags/list",
                     f"/v2/{name}/blobs/{digest_of(manifest.blobs[0])}"):
            response = requests.get(client.url(path), timeout=30)
            assert response.status_code == 503, describe(response)
            assert response.json()["errors"][0]["code"] == "UNKNOWN"
            assert response.headers["Retry-After"]
        # Opening a session writes no metadata; completing it does.
        upload = requests.post(client.url(f"/v2/{name}/blobs/uploads/"), timeout=30)
        assert upload.status_code == 202, describe(upload)
        data = random_bytes(1000)
        location = client.url(_path(upload.headers["Location"]))
        finish = requests.put(with_params(location, [("digest", digest_of(data))]),
                              data=data, timeout=30)
        assert finish.status_code == 503, describe(finish)
        assert client.get("/v2/").status_code == 200
    finally:
        proxy.restore()
    deadline = time.monotonic() + 15
    while True:
        response = requests.get(client.url(f"/v2/{name}/manifests/v1"), timeout=30)
        if response.status_code == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert response.status_code == 200 and response.content == manifest.body
    assert client.push_image(name, "v2").body
    proxy.cut()


def test_blob_get_redirects_to_a_presigned_url(cluster: Cluster) -> None:
    node = cluster.add({"storage": {"redirect": {"disable": False}}})
    client = Client(node.url)
    name = repo_name()
    data = random_bytes(300_000)
    digest = client.push_blob(name, data)
    path = f"/v2/{name}/blobs/{digest}"
    redirect = client.get(path)
    assert redirect.status_code == 307, describe(redirect)
    assert redirect.headers["Docker-Content-Digest"] == digest
    location = redirect.headers["Location"]
    assert requests.get(location, timeout=30).content == data
    ranged = requests.get(location, headers={"Range": "bytes=1000-1999"}, timeout=30)
    assert ranged.status_code == 206 and ranged.content == data[1000:2000]
    followed = requests.get(client.url(path), headers={"Range": "bytes=-10"}, timeout=30)
    assert followed.status_code == 206 and followed.content == data[-10:]
    head = client.head(path)
    assert head.status_code == 200 and head.headers["Content-Length"] == str(len(data))
    assert_error(client.get(f"/v2/{name}/blobs/{digest_of(b'absent')}"), 404, "BLOB_UNKNOWN")


def test_object_store_outage_answers_503_then_recovers(cluster: Cluster,
                                                       services: Services) -> None:
    proxy = CuttableProxy("127.0.0.1", services.moto.port)
    s3 = dict(cluster.config["storage"]["s3"], regionendpoint=f"http://127.0.0.1:{proxy.port}")
    node = cluster.add({"storage": {"s3": s3}})
    client = Client(node.url)
    name = repo_name()
    data = random_bytes(50_000)
    digest = client.push_blob(name, data)
    proxy.cut()
    try:
        for method, path in (("GET", f"/v2/{name}/blobs/{digest}"),
                             ("POST", f"/v2/{name}/blobs/uploads/")):
            response = requests.request(method, client.url(path), timeout=60)
            assert response.status_code == 503, describe(response)
            assert response.json()["errors"][0]["code"] == "UNKNOWN"
    finally:
        proxy.restore()
    assert client.get(f"/v2/{name}/blobs/{digest}").content == data
    proxy.cut()


def test_gc_through_the_cli_drops_cached_answers(cluster: Cluster) -> None:
    """An untagged manifest and its layer, cached on both nodes, are gone after `dockyard gc`."""
    clients = [Client(node.url) for node in cluster.nodes]
    name = repo_name()
    manifest = clients[0].push_image(name, "doomed")
    layer = digest_of(manifest.blobs[-1])
    assert clients[0].delete(f"/v2/{name}/manifests/doomed").status_code == 202
    for client in clients:  # warm both nodes' view (and the shared cache)
        assert client.get(f"/v2/{name}/manifests/{manifest.digest}").status_code == 200
        assert client.head(f"/v2/{name}/blobs/{layer}").status_code == 200
    done = subprocess.run(
        [sys.executable, "-m", "dockyard", "gc", "--config", str(cluster.nodes[0].config_path),
         "--delete-untagged", "--grace-period", "0s"],
        capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    for client in clients:
        assert_error(client.get(f"/v2/{name}/manifests/{manifest.digest}"), 404,
                     "MANIFEST_UNKNOWN")
        assert client.head(f"/v2/{name}/blobs/{layer}").status_code == 404
