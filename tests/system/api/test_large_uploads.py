"""Uploads larger than one read buffer: streamed to storage while hashed, at any chunk size.

Small bodies take a single hop to storage; these take the streaming path, with chunk
boundaries off any block or buffer size, and bodies failing in the middle (a client hanging
up takes the same path; tests/unit/storage covers it without a race against the server).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.system.api.client import (
    Client,
    assert_error,
    describe,
    digest_of,
    random_bytes,
    range_end,
)

MiB = 1024 * 1024


def _assert_blob(client: Client, name: str, digest: str, data: bytes) -> None:
    response = client.get(f"/v2/{name}/blobs/{digest}")
    assert response.status_code == 200, describe(response)
    assert response.content == data


def _pieces(data: bytes, size: int = 64 * 1024) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start:start + size]


def test_monolithic_put(client: Client, name: str) -> None:
    data = random_bytes(3 * MiB + 7)
    digest = client.push_blob(name, data)
    _assert_blob(client, name, digest, data)


def test_single_post(client: Client, name: str) -> None:
    data = random_bytes(2 * MiB + 3)
    response = client.push_blob_single_post(name, data)
    assert response.status_code == 201, describe(response)
    _assert_blob(client, name, digest_of(data), data)


@pytest.mark.parametrize("chunk_size", [MiB + MiB // 2 + 1, 4 * MiB - 1])
def test_chunks_off_block_boundaries(client: Client, name: str, chunk_size: int) -> None:
    data = random_bytes(5 * MiB + 11)
    digest = client.push_blob_chunked(name, data, chunk_size)
    _assert_blob(client, name, digest, data)


def test_sha512_over_chunks(client: Client, name: str) -> None:
    data = random_bytes(3 * MiB + 1)
    digest = client.push_blob_chunked(name, data, 2 * MiB, algorithm="sha512")
    _assert_blob(client, name, digest, data)


def test_streamed_patch_then_final_chunk_in_put(client: Client, name: str) -> None:
    data = random_bytes(4 * MiB + 5)
    split = 3 * MiB + 1
    response = client.patch_chunk(client.upload_url(name), _pieces(data[:split]))
    assert response.status_code == 202, describe(response)
    assert range_end(response) == split - 1
    digest = digest_of(data)
    done = client.finish_upload(client.follow(response.headers["Location"]), digest,
                                data[split:])
    assert done.status_code == 201, describe(done)
    _assert_blob(client, name, digest, data)


def test_wrong_digest_keeps_nothing(client: Client, name: str) -> None:
    data = random_bytes(3 * MiB)
    response = client.finish_upload(client.upload_url(name), digest_of(b"other"), data)
    assert_error(response, 400, "DIGEST_INVALID")
    assert_error(client.get(f"/v2/{name}/blobs/{digest_of(data)}"), 404, "BLOB_UNKNOWN")


@pytest.mark.parametrize("sent", [3 * MiB - 1, 3 * MiB + 1])
def test_streamed_body_off_its_content_range_changes_nothing(client: Client, name: str,
                                                             sent: int) -> None:
    first = client.patch_chunk(client.upload_url(name), b"x" * 100, start=0)
    location = client.follow(first.headers["Location"])
    response = client.patch(location, data=_pieces(random_bytes(sent)),
                            headers={"Content-Range": f"100-{100 + 3 * MiB - 1}",
                                     "Content-Type": "application/octet-stream"})
    assert_error(response, 400, "SIZE_INVALID")
    status = client.get(location)
    assert status.status_code == 204, describe(status)
    assert status.headers["Range"] == "0-99"
