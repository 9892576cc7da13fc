"""Repository names: nesting, the separator grammar, length, and rejection of invalid names."""

from __future__ import annotations

from collections.abc import Callable
from uuid import uuid4

import pytest
import requests

from tests.system.api.client import (
    Client,
    assert_error,
    describe,
    digest_of,
    image_manifest,
    random_bytes,
)


def unique() -> str:
    return uuid4().hex[:10]


@pytest.mark.parametrize("shape", [
    "n{u}/a/b/c",
    "n{u}/a/b/c/d/e/f/g",
    "n{u}",
    "n{u}/with.dots",
    "n{u}/with_under",
    "n{u}/with__double",
    "n{u}/with-dash",
    "n{u}/with---dashes",
    "n{u}/0/1/2",
    "n{u}/a-b.c_d/e",
])
def test_valid_names_work(client: Client, shape: str) -> None:
    name = shape.format(u=unique())
    manifest = client.push_image(name, "latest")
    response = client.get(f"/v2/{name}/manifests/latest")
    assert response.status_code == 200, describe(response)
    assert response.content == manifest.body
    assert client.get(f"/v2/{name}/tags/list").json() == {"name": name, "tags": ["latest"]}
    blob = manifest.blobs[0]
    assert client.get(f"/v2/{name}/blobs/{digest_of(blob)}").content == blob


@pytest.mark.parametrize("word", ["manifests", "blobs", "tags", "uploads", "referrers", "v2",
                                  "list", "catalog"])
def test_names_containing_endpoint_words(client: Client, word: str) -> None:
    # A path component that looks like an endpoint is still just part of the name.
    name = f"n{unique()}/{word}/x/{word}"
    manifest = client.push_image(name, "latest")
    response = client.get(f"/v2/{name}/manifests/latest")
    assert response.status_code == 200, describe(response)
    assert response.content == manifest.body
    assert client.tags(name) == ["latest"]
    digest = client.push_blob_chunked(name, random_bytes(20), 10)
    assert client.head(f"/v2/{name}/blobs/{digest}").status_code == 200


def test_nested_names_are_distinct_repositories(client: Client) -> None:
    base = f"n{unique()}"
    parent = client.push_image(base, "p")
    child = client.push_image(f"{base}/child", "c")
    assert client.tags(base) == ["p"]
    assert client.tags(f"{base}/child") == ["c"]
    assert client.get(f"/v2/{base}/manifests/{child.digest}").status_code == 404
    assert client.get(f"/v2/{base}/child/manifests/{parent.digest}").status_code == 404


def test_name_of_255_characters(client: Client) -> None:
    head = f"n{unique()}/"
    name = head + "a" * (255 - len(head))
    assert len(name) == 255
    client.push_image(name, "latest")
    assert client.get(f"/v2/{name}/manifests/latest").status_code == 200


# Each operation takes a name and returns the response for it.
Operation = Callable[[Client, str], requests.Response]

OPERATIONS: dict[str, Operation] = {
    "start upload": lambda c, n: c.start_upload(n),
    "single post": lambda c, n: c.push_blob_single_post(n, b"x"),
    "get manifest": lambda c, n: c.get(f"/v2/{n}/manifests/latest"),
    "put manifest": lambda c, n: c.put_manifest(n, "latest", image_manifest()),
    "delete manifest": lambda c, n: c.delete(f"/v2/{n}/manifests/latest"),
    "get blob": lambda c, n: c.get(f"/v2/{n}/blobs/{digest_of(b'x')}"),
    "delete blob": lambda c, n: c.delete(f"/v2/{n}/blobs/{digest_of(b'x')}"),
    "tags": lambda c, n: c.get(f"/v2/{n}/tags/list"),
    "referrers": lambda c, n: c.get(f"/v2/{n}/referrers/{digest_of(b'x')}"),
    "upload status": lambda c, n: c.get(
        f"/v2/{n}/blobs/uploads/3f6e0f0e-5b1c-4c3e-9a55-0123456789ab"),
}

# Names that still form a well-shaped repository path: only NAME_INVALID will do.
INVALID_NAMES = [
    "Upper/case",
    "t/Mixed",
    "t/a..b",
    "t/a._b",
    "t/a___b",
    "-t/x",
    "t/-lead",
    "t/trail-",
    "t/trail.",
    "t/_under",
    "t/sp%20ace",
    "t/" + "a" * 254,
    "t/" + "a" * 300,
    "t/a+b",
    "t/caf%C3%A9",
]

# Names whose path may not route to a repository at all: NAME_INVALID or a plain 404.
UNROUTABLE_NAMES = [
    "t//double",
    "t/x/",
    "/t/x",
]


@pytest.mark.parametrize("operation", list(OPERATIONS))
@pytest.mark.parametrize("name", INVALID_NAMES, ids=lambda n: n[:24])
def test_invalid_name(client: Client, name: str, operation: str) -> None:
    response = OPERATIONS[operation](client, name)
    assert_error(response, 400, "NAME_INVALID")


@pytest.mark.parametrize("operation", list(OPERATIONS))
@pytest.mark.parametrize("name", UNROUTABLE_NAMES)
def test_unroutable_name(client: Client, name: str, operation: str) -> None:
    response = OPERATIONS[operation](client, name)
    assert_error(response, (400, 404))
    if response.status_code == 400:
        assert_error(response, 400, "NAME_INVALID")


def test_head_with_invalid_name(client: Client) -> None:
    assert client.head(f"/v2/Bad/Name/manifests/{digest_of(b'x')}").status_code == 400
    assert client.head(f"/v2/Bad/Name/blobs/{digest_of(b'x')}").status_code == 400
