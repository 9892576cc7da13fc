"""Hostile manifest bodies and headers: each gets 400 MANIFEST_INVALID, nothing is stored, and
the registry keeps serving. Media types are RFC 6838 tokens (they come back as a header),
nesting is bounded before parsing, and text that UTF-8 cannot hold is refused, not a 500."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.server import RunningRegistry
from tests.system.api.client import (
    OCI_MANIFEST,
    Client,
    assert_error,
    describe,
    image_manifest,
    raw_request,
)

ARTIFACT = "application/vnd.example.thing.v1+json"


def _refused(client: Client, name: str, reference: str, response: Any) -> None:
    """400 MANIFEST_INVALID, the reference unknown afterwards, the registry still answering."""
    assert_error(response, 400, "MANIFEST_INVALID")
    assert client.get(client.manifest_path(name, reference)).status_code == 404
    assert client.get("/v2/").status_code == 200


def _pushable(client: Client, name: str, **changes: Any) -> bytes:
    """A manifest whose blobs are in `name`: only the `changes` can make it invalid."""
    manifest = image_manifest()
    client.push_contents(name, manifest)
    return json.dumps({**manifest.document, **changes}).encode()


# -- defect: media types ------------------------------------------------------------------------

@pytest.mark.parametrize("media_type", [
    "a/b\r\nX-Injected: 1",
    "a/b\x00c",
    "a/b\nX-Injected: 1",
    "application/" + "x" * 100_000,
    "application/vnd." + "x" * 240 + "+json",  # 256 characters
    "application/vnd.oci.image.manifest.v1+json; charset=utf-8",
    "application/vnd.oci.image manifest",
    "application",
    "/json",
    "",
])
def test_body_media_type_must_be_a_bounded_token(client: Client, name: str,
                                                 media_type: str) -> None:
    body = json.dumps({"mediaType": media_type}).encode()
    response = client.put_manifest(name, "crlf2", body, media_type="application/octet-stream")
    _refused(client, name, "crlf2", response)


def test_invalid_media_type_in_an_image_manifest_is_refused(client: Client, name: str) -> None:
    body = _pushable(client, name, mediaType=OCI_MANIFEST + "\r\nX-Injected: 1")
    response = client.put_manifest(name, "v1", body, media_type="application/octet-stream")
    _refused(client, name, "v1", response)


@pytest.mark.parametrize("artifact_type", [
    "a/b\r\nX-Injected: 1", "text", "x/" + "y" * 300, "a/b; q=1",
])
def test_artifact_type_must_be_a_media_type(client: Client, name: str,
                                            artifact_type: str) -> None:
    body = _pushable(client, name, artifactType=artifact_type)
    response = client.put_manifest(name, "art", body, media_type=OCI_MANIFEST)
    _refused(client, name, "art", response)


def test_descriptor_media_type_must_be_a_media_type(client: Client, name: str) -> None:
    manifest = image_manifest()
    client.push_contents(name, manifest)
    document = manifest.document
    document["layers"][0]["mediaType"] = "application/x\r\nX-Injected: 1"
    response = client.put_manifest(name, "layer", json.dumps(document).encode(),
                                   media_type=OCI_MANIFEST)
    _refused(client, name, "layer", response)


@pytest.mark.parametrize("content_type", ["text/html", "text/html; charset=utf-8",
                                          "image/svg+xml", "application/xhtml+xml"])
def test_a_browser_rendered_type_is_not_stored(client: Client, name: str,
                                               content_type: str) -> None:
    # No mediaType in the body: the Content-Type would be what is served back.
    body = _pushable(client, name)
    document = json.loads(body)
    del document["mediaType"]
    response = client.put_manifest(name, "page", json.dumps(document).encode(),
                                   media_type=content_type)
    _refused(client, name, "page", response)


def test_a_content_type_that_is_no_media_type_is_refused(client: Client, name: str) -> None:
    manifest = image_manifest()
    client.push_contents(name, manifest)
    response = client.put_manifest(name, "ct", manifest, media_type="nonsense")
    _refused(client, name, "ct", response)


def test_an_unknown_json_manifest_type_is_stored_and_served_as_is(client: Client,
                                                                  name: str) -> None:
    body = json.dumps({"mediaType": ARTIFACT, "value": 1}).encode()
    response = client.put_manifest(name, "thing", body, media_type=ARTIFACT)
    assert response.status_code == 201, describe(response)
    fetched = client.get(client.manifest_path(name, "thing"))
    assert fetched.status_code == 200, describe(fetched)
    assert fetched.headers["Content-Type"] == ARTIFACT
    assert fetched.content == body


def test_responses_forbid_content_sniffing(client: Client, name: str) -> None:
    manifest = client.push_image(name, "latest")
    for response in (client.get(client.manifest_path(name, "latest")),
                     client.head(client.manifest_path(name, "latest")),
                     client.get("/v2/"),
                     client.get(client.manifest_path(name, "missing"))):
        assert response.headers.get("X-Content-Type-Options") == "nosniff", describe(response)
    assert client.get(client.manifest_path(name, "latest")).content == manifest.body


# -- defect: nesting ----------------------------------------------------------------------------

@pytest.mark.parametrize("depth", [65, 1_000, 10_000, 100_000])
def test_deep_nesting_is_refused(client: Client, name: str, depth: int) -> None:
    for body in (b"[" * depth + b"]" * depth,
                 b'{"mediaType":"' + OCI_MANIFEST.encode() + b'","schemaVersion":2,"x":'
                 + b'{"a":' * depth + b"1" + b"}" * depth + b"}"):
        response = client.put_manifest(name, "deep", body, media_type=OCI_MANIFEST)
        _refused(client, name, "deep", response)


def test_nesting_within_the_limit_is_still_parsed(client: Client, name: str) -> None:
    manifest = image_manifest()
    client.push_contents(name, manifest)
    nested: Any = "leaf"
    for _ in range(40):
        nested = [nested]
    # Brackets inside strings do not count towards the depth.
    body = json.dumps({**manifest.document, "x-nested": nested,
                       "annotations": {"brackets": "[" * 5_000}}).encode()
    response = client.put_manifest(name, "shallow", body, media_type=OCI_MANIFEST)
    assert response.status_code == 201, describe(response)


# -- defect: invalid Unicode --------------------------------------------------------------------

LONE_SURROGATE = "\ud800"


@pytest.mark.parametrize("changes", [
    {"mediaType": "application/vnd.oci.image.manifest.v1+json" + LONE_SURROGATE},
    {"artifactType": "application/x" + LONE_SURROGATE},
    {"annotations": {"org.example": LONE_SURROGATE}},
    {"annotations": {LONE_SURROGATE: "value"}},
])
def test_lone_surrogates_are_refused(client: Client, name: str, changes: dict[str, Any]) -> None:
    body = _pushable(client, name, **changes)
    assert b"\\ud800" in body
    response = client.put_manifest(name, "utf", body, media_type="application/octet-stream")
    _refused(client, name, "utf", response)


def test_a_raw_0xff_in_the_content_type_is_refused(client: Client, name: str,
                                                   registry: RunningRegistry) -> None:
    body = _pushable(client, name)
    document = json.loads(body)
    del document["mediaType"]
    body = json.dumps(document).encode()
    for content_type in ("application/vnd.oci.image.manifest.v1+json\xff",
                         "application/\xff", "application/json; x=\xff"):
        response = raw_request(
            registry.host,
            f"PUT /v2/{name}/manifests/ff HTTP/1.1\n"
            f"Content-Type: {content_type}\nContent-Length: {len(body)}",
            body,
        )
        assert response.status == 400, (content_type, response)
        assert json.loads(response.body)["errors"][0]["code"] == "MANIFEST_INVALID"
        assert client.get(client.manifest_path(name, "ff")).status_code == 404
    assert client.get("/v2/").status_code == 200
