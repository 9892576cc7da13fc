"""Behaviour that depends on configuration: deletes disabled, manifest size limit."""

from __future__ import annotations

import json
from collections.abc import Callable

from tests.server import RunningRegistry
from tests.system.api.client import (
    OCI_MANIFEST,
    Client,
    Manifest,
    assert_error,
    describe,
    digest_of,
    image_manifest,
    random_bytes,
    repo_name,
)


def test_deletes_disabled(start_registry: Callable[..., RunningRegistry]) -> None:
    server = start_registry(config={"storage": {"delete": {"enabled": False}}})
    client = Client(server.url)
    name = repo_name()
    manifest = client.push_image(name, "latest")
    blob = manifest.blobs[0]
    for path in (f"/v2/{name}/blobs/{digest_of(blob)}",
                 f"/v2/{name}/manifests/{manifest.digest}",
                 f"/v2/{name}/manifests/latest"):
        assert_error(client.delete(path), 405, "UNSUPPORTED")
    # nothing was removed
    assert client.get(f"/v2/{name}/manifests/latest").content == manifest.body
    assert client.get(f"/v2/{name}/blobs/{digest_of(blob)}").content == blob
    # cancelling an upload is not a content delete and still works
    location = client.upload_url(name)
    assert client.delete(location).status_code == 204
    client.close()


def padded_manifest(client: Client, name: str, size: int) -> Manifest:
    """A valid manifest of exactly `size` bytes, its blobs pushed."""
    base = image_manifest()
    client.push_contents(name, base)
    document = base.document
    document["annotations"] = {"pad": ""}
    body = json.dumps(document).encode()
    document["annotations"]["pad"] = "x" * (size - len(body))
    body = json.dumps(document).encode()
    assert len(body) == size
    return Manifest(body, OCI_MANIFEST, base.blobs)


def test_configured_manifest_size_limit(start_registry: Callable[..., RunningRegistry]) -> None:
    server = start_registry(config={"limits": {"manifestmaxbytes": 2000}})
    client = Client(server.url)
    name = repo_name()
    at_limit = padded_manifest(client, name, 2000)
    response = client.put_manifest(name, "fits", at_limit)
    assert response.status_code == 201, describe(response)
    over = padded_manifest(client, name, 2001)
    assert_error(client.put_manifest(name, "fits", over), 413)
    assert_error(client.put_manifest(name, over.digest, over), 413)
    assert client.get(f"/v2/{name}/manifests/fits").content == at_limit.body
    # blobs are not manifests: the limit does not apply to them
    assert client.push_blob(name, random_bytes(10_000))
    client.close()


def test_configured_headers_are_on_every_response(
        start_registry: Callable[..., RunningRegistry]) -> None:
    """distribution's http.headers: on API answers, errors and blob bodies alike."""
    server = start_registry(config={"http": {"headers": {
        "X-Content-Type-Options": ["nosniff"], "X-Dockyard-Test": ["one", "two"]}}})
    client = Client(server.url)
    digest = client.push_blob("headers/app", b"some bytes")
    for response in (client.get("/v2/"), client.get("/v2/headers/app/manifests/missing"),
                     client.get(f"/v2/headers/app/blobs/{digest}")):
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.raw.headers.getlist("X-Dockyard-Test") == ["one", "two"]
