"""Hostile manifest bodies and headers: each gets 400 MANIFEST_INVALID, nothing is stored, and
the registry keeps serving. Media types are RFC 6838 tokens (they come back as a header),
nesting is bounded before parsing, and text that UTF-8 cannot hold is refused, not a 500."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.system.api.client import (
    OCI_MANIFEST,
    Client,
    assert_error,
    describe,
    image_manifest,
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
