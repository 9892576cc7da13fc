"""Pulling, probing, ranging and deleting blobs: /v2/<name>/blobs/<digest>."""

from __future__ import annotations

import pytest

from tests.server import RunningRegistry
from tests.system.api.client import (
    API_VERSION,
    API_VERSION_HEADER,
    Client,
    assert_error,
    assert_head_error,
    describe,
    digest_matches,
    digest_of,
    random_bytes,
    raw_request,
    repo_name,
)

SIZE = 100


@pytest.fixture
def blob(client: Client, name: str) -> tuple[str, bytes]:
    """A 100-byte blob pushed to the test's repository: (digest, data)."""
    data = random_bytes(SIZE)
    return client.push_blob(name, data), data


def test_get_blob(client: Client, name: str, blob: tuple[str, bytes]) -> None:
    digest, data = blob
    response = client.get(f"/v2/{name}/blobs/{digest}")
    assert response.status_code == 200
    assert response.content == data
    assert response.headers["Content-Length"] == str(len(data))
    assert response.headers["Docker-Content-Digest"] == digest
    assert response.headers["Accept-Ranges"] == "bytes"
    assert response.headers["Content-Type"] == "application/octet-stream"
    assert response.headers[API_VERSION_HEADER] == API_VERSION


def test_head_blob(client: Client, name: str, blob: tuple[str, bytes]) -> None:
    digest, data = blob
    response = client.head(f"/v2/{name}/blobs/{digest}")
    assert response.status_code == 200
    assert response.content == b""
    assert response.headers["Content-Length"] == str(len(data))
    assert response.headers["Docker-Content-Digest"] == digest
    assert response.headers["Accept-Ranges"] == "bytes"


def test_head_blob_sends_no_body_on_the_wire(
        registry: RunningRegistry, name: str, blob: tuple[str, bytes]) -> None:
    digest, _ = blob
    response = raw_request(registry.host, f"HEAD /v2/{name}/blobs/{digest} HTTP/1.1")
    assert response.status == 200
    assert response.body == b""
    missing = raw_request(registry.host, f"HEAD /v2/{name}/blobs/{digest_of(b'x')} HTTP/1.1")
    assert missing.status == 404
    assert missing.body == b""


def test_large_blob_round_trip(client: Client, name: str) -> None:
    data = random_bytes(3 * 1024 * 1024 + 17)
    digest = client.push_blob(name, data)
    response = client.get(f"/v2/{name}/blobs/{digest}")
    assert response.status_code == 200
    assert digest_of(response.content) == digest


@pytest.mark.parametrize(("header", "start", "end"), [
    ("bytes=0-9", 0, 9),
    ("bytes=10-10", 10, 10),
    ("bytes=90-99", 90, 99),
    ("bytes=40-", 40, 99),
    ("bytes=-7", 93, 99),
    ("bytes=0-", 0, 99),
    ("bytes=95-1000", 95, 99),
    ("bytes=-500", 0, 99),
])
def test_range_request(client: Client, name: str, blob: tuple[str, bytes],
                       header: str, start: int, end: int) -> None:
    digest, data = blob
    response = client.get(f"/v2/{name}/blobs/{digest}", headers={"Range": header})
    assert response.status_code == 206, header
    assert response.content == data[start:end + 1]
    assert response.headers["Content-Range"] == f"bytes {start}-{end}/{SIZE}"
    assert response.headers["Content-Length"] == str(end - start + 1)


@pytest.mark.parametrize("header", ["bytes=100-", "bytes=100-200", "bytes=500-600"])
def test_unsatisfiable_range(client: Client, name: str, blob: tuple[str, bytes],
                             header: str) -> None:
    digest, _ = blob
    response = client.get(f"/v2/{name}/blobs/{digest}", headers={"Range": header})
    assert response.status_code == 416
    if "Content-Range" in response.headers:
        assert response.headers["Content-Range"] == f"bytes */{SIZE}"


@pytest.mark.parametrize("header", [
    "bytes=abc", "bytes=9-2", "items=0-1", "bytes=", "bytes=--1", "bytes", "0-10",
    "bytes=1-2-3", "bytes=-", "bytes=0x10-0x20", "bytes=99999999999999999999999999-",
])
def test_malformed_range_is_ignored_or_refused(
        registry: RunningRegistry, name: str, blob: tuple[str, bytes], header: str) -> None:
    digest, data = blob
    response = raw_request(registry.host, f"GET /v2/{name}/blobs/{digest} HTTP/1.1\n"
                                          f"Range: {header}")
    assert response.status in (200, 416), (header, response.status)
    if response.status == 200:
        assert response.body == data


@pytest.mark.parametrize("header", ["bytes=0-1,5-6", "bytes=0-1, 50-", "items=0-1", "bytes=-"])
def test_a_range_not_read_is_ignored(client: Client, name: str, blob: tuple[str, bytes],
                                     header: str) -> None:
    """RFC 9110: a server may ignore several ranges, and must ignore a unit it does not
    know; either way it sends the whole representation."""
    digest, data = blob
    response = client.get(f"/v2/{name}/blobs/{digest}", headers={"Range": header})
    assert response.status_code == 200, describe(response)
    assert response.content == data
    assert "Content-Range" not in response.headers


def test_unknown_blob(client: Client, name: str) -> None:
    client.push_blob(name, random_bytes(8))
    digest = digest_of(random_bytes(8))
    assert_error(client.get(f"/v2/{name}/blobs/{digest}"), 404, "BLOB_UNKNOWN")
    assert_head_error(client.head(f"/v2/{name}/blobs/{digest}"), 404)


def test_blob_in_unknown_repository(client: Client) -> None:
    digest = digest_of(random_bytes(8))
    response = client.get(f"/v2/{repo_name()}/blobs/{digest}")
    assert_error(response, 404, "BLOB_UNKNOWN", "NAME_UNKNOWN")


def test_blobs_are_scoped_to_their_repository(client: Client, name: str,
                                              blob: tuple[str, bytes]) -> None:
    digest, _ = blob
    other = repo_name()
    client.push_blob(other, random_bytes(4))
    assert_error(client.get(f"/v2/{other}/blobs/{digest}"), 404, "BLOB_UNKNOWN")
    assert_head_error(client.head(f"/v2/{other}/blobs/{digest}"), 404)


@pytest.mark.parametrize("reference", [
    "sha256:abc",
    "sha256:" + "A" * 64,
    "sha256:" + "g" * 64,
    "md5:" + "0" * 32,
    "notadigest",
    "sha512:" + "0" * 64,
])
def test_malformed_blob_digest(client: Client, name: str, reference: str) -> None:
    client.push_blob(name, random_bytes(4))
    response = client.get(f"/v2/{name}/blobs/{reference}")
    # A malformed digest is DIGEST_INVALID; routers that never match it may answer 404.
    assert_error(response, (400, 404), "DIGEST_INVALID", "BLOB_UNKNOWN")
    if response.status_code == 400:
        assert_error(response, 400, "DIGEST_INVALID")


def test_sha512_blob(client: Client, name: str) -> None:
    data = random_bytes(300)
    digest = client.push_blob(name, data, algorithm="sha512")
    assert digest.startswith("sha512:")
    response = client.get(f"/v2/{name}/blobs/{digest}")
    assert response.status_code == 200
    assert response.content == data
    assert digest_matches(response.headers["Docker-Content-Digest"], data)
    head = client.head(f"/v2/{name}/blobs/{digest}")
    assert head.status_code == 200
    assert head.headers["Content-Length"] == "300"


def test_delete_blob(client: Client, name: str, blob: tuple[str, bytes]) -> None:
    digest, _ = blob
    response = client.delete(f"/v2/{name}/blobs/{digest}")
    assert response.status_code == 202
    assert response.headers[API_VERSION_HEADER] == API_VERSION
    assert_error(client.get(f"/v2/{name}/blobs/{digest}"), 404, "BLOB_UNKNOWN")
    assert_head_error(client.head(f"/v2/{name}/blobs/{digest}"), 404)
    assert_error(client.delete(f"/v2/{name}/blobs/{digest}"), 404, "BLOB_UNKNOWN")


def test_delete_blob_leaves_other_repositories_alone(client: Client, name: str) -> None:
    data = random_bytes(64)
    other = repo_name()
    digest = client.push_blob(name, data)
    client.push_blob(other, data)
    assert client.delete(f"/v2/{name}/blobs/{digest}").status_code == 202
    response = client.get(f"/v2/{other}/blobs/{digest}")
    assert response.status_code == 200
    assert response.content == data


def test_delete_unknown_blob(client: Client, name: str) -> None:
    client.push_blob(name, random_bytes(4))
    response = client.delete(f"/v2/{name}/blobs/{digest_of(random_bytes(4))}")
    assert_error(response, 404, "BLOB_UNKNOWN")


def test_blob_can_be_pushed_again_after_delete(client: Client, name: str,
                                               blob: tuple[str, bytes]) -> None:
    digest, data = blob
    assert client.delete(f"/v2/{name}/blobs/{digest}").status_code == 202
    assert client.push_blob(name, data) == digest
    assert client.get(f"/v2/{name}/blobs/{digest}").content == data

