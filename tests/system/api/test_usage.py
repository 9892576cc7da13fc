"""GET /v2/_dockyard/usage: bytes per repository and in total, deduplicated and logical."""

from __future__ import annotations

from tests.system.api.client import (
    Client,
    assert_error,
    describe,
    image_manifest,
    random_bytes,
    repo_name,
)

USAGE = "/v2/_dockyard/usage"


def test_usage_counts_shared_blobs_once(client: Client, name: str) -> None:
    shared = random_bytes(20_000)
    mine = image_manifest([shared, random_bytes(3_000)])
    client.push_manifest(name, mine, "v1")
    other = repo_name()
    theirs = image_manifest([shared])
    client.push_manifest(other, theirs, "v1")

    response = client.get(USAGE, params={"repository": name})
    assert response.status_code == 200, describe(response)
    assert response.headers["Content-Type"] == "application/json"
    body = response.json()
    [entry] = body["repositories"]
    logical = sum(len(blob) for blob in mine.blobs) + mine.size
    assert entry == {
        "name": name, "blobs": 3, "manifests": 1,
        "logical_bytes": logical,
        "unique_bytes": logical - len(shared),
    }
    assert body["total"]["stored_bytes"] == logical - len(shared)

    everything = client.get(USAGE).json()
    names = {item["name"]: item for item in everything["repositories"]}
    assert names[name] == entry
    assert names[other]["unique_bytes"] == len(theirs.blobs[0]) + theirs.size
    total = everything["total"]
    assert total["logical_bytes"] == sum(item["logical_bytes"] for item in names.values())
    assert total["stored_bytes"] <= total["logical_bytes"]
    assert total["blobs"] >= 4


def test_usage_errors(client: Client) -> None:
    assert_error(client.get(USAGE, params={"repository": repo_name()}), 404, "NAME_UNKNOWN")
    assert_error(client.get(USAGE, params={"repository": "Bad Name"}), 400, "NAME_INVALID")
    assert_error(client.post(USAGE), 405, "UNSUPPORTED")
