"""Blob upload sessions: POST, PATCH, PUT, GET status, DELETE, mounts, single-POST uploads."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import pytest
import requests

from tests.server import RunningRegistry
from tests.system.api.client import (
    API_VERSION,
    API_VERSION_HEADER,
    Client,
    assert_error,
    describe,
    digest_matches,
    digest_of,
    random_bytes,
    range_end,
    repo_name,
    with_params,
)

EMPTY_SHA256 = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def assert_blob(client: Client, name: str, digest: str, data: bytes) -> None:
    response = client.get(f"/v2/{name}/blobs/{digest}")
    assert response.status_code == 200, describe(response)
    assert response.content == data


def assert_no_blob(client: Client, name: str, digest: str) -> None:
    assert_error(client.get(f"/v2/{name}/blobs/{digest}"), 404, "BLOB_UNKNOWN")


def assert_blob_created(client: Client, response: requests.Response, name: str,
                        digest: str) -> None:
    """201 with a pullable Location for the blob and its digest."""
    assert response.status_code == 201, describe(response)
    location = client.follow(response.headers.get("Location"))
    assert urlsplit(location).path == f"/v2/{name}/blobs/{digest}"
    assert response.headers["Docker-Content-Digest"] == digest
    assert response.headers[API_VERSION_HEADER] == API_VERSION


# -- opening a session --------------------------------------------------------------------------


def test_post_opens_a_session(client: Client, registry: RunningRegistry, name: str) -> None:
    response = client.start_upload(name)
    assert response.status_code == 202, describe(response)
    uuid = response.headers["Docker-Upload-UUID"]
    location = client.follow(response.headers["Location"])
    assert location.startswith(registry.url + "/")
    assert urlsplit(location).path.startswith(f"/v2/{name}/blobs/uploads/")
    assert uuid in location
    assert response.headers["Range"] == "0-0"
    assert response.headers["Content-Length"] == "0"
    assert response.content == b""
    assert response.headers[API_VERSION_HEADER] == API_VERSION


def test_each_post_gets_its_own_session(client: Client, name: str) -> None:
    first = client.start_upload(name)
    second = client.start_upload(name)
    assert first.headers["Docker-Upload-UUID"] != second.headers["Docker-Upload-UUID"]
    assert first.headers["Location"] != second.headers["Location"]


def test_upload_status_of_a_new_session(client: Client, name: str) -> None:
    response = client.start_upload(name)
    location = client.follow(response.headers["Location"])
    status = client.get(location)
    assert status.status_code == 204, describe(status)
    assert status.headers["Range"] == "0-0"
    assert status.headers["Docker-Upload-UUID"] == response.headers["Docker-Upload-UUID"]
    assert status.content == b""


# -- monolithic ---------------------------------------------------------------------------------


def test_post_then_put(client: Client, name: str) -> None:
    data = random_bytes(2048)
    digest = digest_of(data)
    response = client.finish_upload(client.upload_url(name), digest, data)
    assert_blob_created(client, response, name, digest)
    assert client.get(client.follow(response.headers["Location"])).content == data


def test_single_post_upload(client: Client, name: str) -> None:
    data = random_bytes(777)
    digest = digest_of(data)
    response = client.push_blob_single_post(name, data)
    assert_blob_created(client, response, name, digest)
    assert_blob(client, name, digest, data)


def test_single_post_with_wrong_digest(client: Client, name: str) -> None:
    data = random_bytes(64)
    wrong = digest_of(b"something else")
    response = client.push_blob_single_post(name, data, digest=wrong)
    assert_error(response, 400, "DIGEST_INVALID")
    assert_no_blob(client, name, wrong)
    assert_no_blob(client, name, digest_of(data))


def test_single_post_with_malformed_digest(client: Client, name: str) -> None:
    response = client.push_blob_single_post(name, b"abc", digest="sha256:xyz")
    assert_error(response, 400, "DIGEST_INVALID")


def test_single_post_of_existing_blob(client: Client, name: str) -> None:
    data = random_bytes(32)
    digest = client.push_blob(name, data)
    assert_blob_created(client, client.push_blob_single_post(name, data), name, digest)
    assert_blob(client, name, digest, data)


def test_zero_length_blob(client: Client, name: str) -> None:
    response = client.finish_upload(client.upload_url(name), EMPTY_SHA256)
    assert_blob_created(client, response, name, EMPTY_SHA256)
    blob = client.get(f"/v2/{name}/blobs/{EMPTY_SHA256}")
    assert blob.status_code == 200
    assert blob.content == b""
    assert blob.headers["Content-Length"] == "0"
    head = client.head(f"/v2/{name}/blobs/{EMPTY_SHA256}")
    assert head.status_code == 200
    assert head.headers["Content-Length"] == "0"


def test_zero_length_blob_single_post(client: Client) -> None:
    name = repo_name()
    assert_blob_created(client, client.push_blob_single_post(name, b""), name, EMPTY_SHA256)


def test_sha512_monolithic(client: Client, name: str) -> None:
    data = random_bytes(1000)
    digest = digest_of(data, "sha512")
    response = client.finish_upload(client.upload_url(name), digest, data)
    assert_blob_created(client, response, name, digest)
    assert_blob(client, name, digest, data)


def test_sha512_single_post(client: Client, name: str) -> None:
    data = random_bytes(100)
    digest = digest_of(data, "sha512")
    assert_blob_created(client, client.push_blob_single_post(name, data, digest), name, digest)
    assert_blob(client, name, digest, data)


def test_sha512_chunked(client: Client, name: str) -> None:
    data = random_bytes(3000)
    digest = client.push_blob_chunked(name, data, 1024, algorithm="sha512")
    assert_blob(client, name, digest, data)


def test_sha512_wrong_digest(client: Client, name: str) -> None:
    data = random_bytes(100)
    wrong = digest_of(b"other", "sha512")
    response = client.finish_upload(client.upload_url(name), wrong, data)
    assert_error(response, 400, "DIGEST_INVALID")
    assert_no_blob(client, name, wrong)


# -- chunked ------------------------------------------------------------------------------------


def test_chunked_with_content_range(client: Client, name: str) -> None:
    data = random_bytes(10_000)
    digest = client.push_blob_chunked(name, data, 3000)
    assert_blob(client, name, digest, data)


def test_chunk_responses(client: Client, name: str) -> None:
    location = client.upload_url(name)
    response = client.patch_chunk(location, random_bytes(10), start=0)
    assert response.status_code == 202, describe(response)
    assert response.headers["Range"] == "0-9"
    assert response.headers["Docker-Upload-UUID"]
    assert response.headers.get("Content-Length", "0") == "0"
    assert client.follow(response.headers["Location"])
    status = client.get(client.follow(response.headers["Location"]))
    assert status.status_code == 204
    assert status.headers["Range"] == "0-9"
    assert status.headers["Docker-Upload-UUID"] == response.headers["Docker-Upload-UUID"]


def test_streamed_patch_without_content_range(client: Client, name: str) -> None:
    data = random_bytes(5000)
    digest = client.push_blob_chunked(name, data, 2000, content_range=False)
    assert_blob(client, name, digest, data)


def test_streamed_patch_with_chunked_transfer_encoding(client: Client, name: str) -> None:
    # Docker streams a layer as one PATCH with Transfer-Encoding: chunked and no length.
    data = random_bytes(200_000)

    def pieces() -> Iterator[bytes]:
        for start in range(0, len(data), 65536):
            yield data[start:start + 65536]

    location = client.upload_url(name)
    response = client.patch_chunk(location, pieces())
    assert response.status_code == 202, describe(response)
    assert range_end(response) == len(data) - 1
    digest = digest_of(data)
    done = client.finish_upload(client.follow(response.headers["Location"]), digest)
    assert_blob_created(client, done, name, digest)
    assert_blob(client, name, digest, data)


def test_final_chunk_in_put(client: Client, name: str) -> None:
    data = random_bytes(300)
    location = client.upload_url(name)
    response = client.patch_chunk(location, data[:200], start=0)
    assert response.status_code == 202
    location = client.follow(response.headers["Location"])
    digest = digest_of(data)
    done = client.finish_upload(location, digest, data[200:])
    assert_blob_created(client, done, name, digest)
    assert_blob(client, name, digest, data)


def test_final_chunk_in_put_with_content_range(client: Client, name: str) -> None:
    data = random_bytes(300)
    response = client.patch_chunk(client.upload_url(name), data[:100], start=0)
    digest = digest_of(data)
    done = client.finish_upload(client.follow(response.headers["Location"]), digest, data[100:],
                                headers={"Content-Range": "100-299"})
    assert_blob_created(client, done, name, digest)
    assert_blob(client, name, digest, data)


def test_one_byte_chunks(client: Client, name: str) -> None:
    data = random_bytes(6)
    digest = client.push_blob_chunked(name, data, 1)
    assert_blob(client, name, digest, data)


def test_mixed_streamed_and_ranged_chunks(client: Client, name: str) -> None:
    data = random_bytes(90)
    location = client.upload_url(name)
    first = client.patch_chunk(location, data[:30])
    assert range_end(first) == 29
    second = client.patch_chunk(client.follow(first.headers["Location"]), data[30:60], start=30)
    assert second.status_code == 202, describe(second)
    assert range_end(second) == 59
    third = client.patch_chunk(client.follow(second.headers["Location"]), data[60:])
    assert range_end(third) == 89
    digest = digest_of(data)
    done = client.finish_upload(client.follow(third.headers["Location"]), digest)
    assert_blob_created(client, done, name, digest)


@pytest.mark.parametrize(("start", "size"), [
    (20, 10),   # a gap after the stored bytes
    (0, 10),    # the same first chunk again
    (5, 10),    # overlapping the stored bytes
    (9, 1),     # the last stored byte again
])
def test_out_of_order_chunk(client: Client, name: str, start: int, size: int) -> None:
    data = random_bytes(30)
    location = client.upload_url(name)
    first = client.patch_chunk(location, data[:10], start=0)
    assert first.status_code == 202
    location = client.follow(first.headers["Location"])
    bad = client.patch_chunk(location, random_bytes(size), start=start)
    assert bad.status_code == 416, describe(bad)
    assert bad.headers["Range"] == "0-9"
    assert bad.headers[API_VERSION_HEADER] == API_VERSION
    # The session is intact: the right chunk still goes through and the blob is correct.
    good = client.patch_chunk(location, data[10:], start=10)
    assert good.status_code == 202, describe(good)
    assert good.headers["Range"] == "0-29"
    digest = digest_of(data)
    done = client.finish_upload(client.follow(good.headers["Location"]), digest)
    assert_blob_created(client, done, name, digest)
    assert_blob(client, name, digest, data)


def test_first_chunk_must_start_at_zero(client: Client, name: str) -> None:
    location = client.upload_url(name)
    response = client.patch_chunk(location, random_bytes(10), start=5)
    assert response.status_code == 416, describe(response)
    assert response.headers["Range"] == "0-0"


def test_content_range_disagreeing_with_body_length(client: Client, name: str) -> None:
    location = client.upload_url(name)
    response = client.patch(location, data=random_bytes(5),
                            headers={"Content-Range": "0-9",
                                     "Content-Type": "application/octet-stream"})
    assert response.status_code in (400, 416), describe(response)


def test_put_without_digest(client: Client, name: str) -> None:
    response = client.put(client.upload_url(name), data=random_bytes(10))
    assert_error(response, 400, "DIGEST_INVALID")


def test_put_with_wrong_digest_keeps_nothing(client: Client, name: str) -> None:
    data = random_bytes(100)
    wrong = digest_of(random_bytes(100))
    response = client.finish_upload(client.upload_url(name), wrong, data)
    assert_error(response, 400, "DIGEST_INVALID")
    assert_no_blob(client, name, wrong)
    assert_no_blob(client, name, digest_of(data))


def test_chunked_put_with_wrong_digest_keeps_nothing(client: Client, name: str) -> None:
    data = random_bytes(100)
    response = client.patch_chunk(client.upload_url(name), data, start=0)
    wrong = digest_of(data[:-1])
    done = client.finish_upload(client.follow(response.headers["Location"]), wrong)
    assert_error(done, 400, "DIGEST_INVALID")
    assert_no_blob(client, name, wrong)
    assert_no_blob(client, name, digest_of(data))


@pytest.mark.parametrize("digest", [
    "sha256:xyz", "sha256:" + "A" * 64, "md5:" + "0" * 32, "nodigest", "sha256:",
])
def test_put_with_malformed_digest(client: Client, name: str, digest: str) -> None:
    response = client.finish_upload(client.upload_url(name), digest, b"data")
    assert_error(response, 400, "DIGEST_INVALID")


def test_delete_upload(client: Client, name: str) -> None:
    location = client.upload_url(name)
    client.patch_chunk(location, random_bytes(10), start=0)
    response = client.delete(location)
    assert response.status_code == 204, describe(response)
    assert response.headers[API_VERSION_HEADER] == API_VERSION
    assert_error(client.get(location), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_error(client.patch_chunk(location, b"x"), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_error(client.finish_upload(location, digest_of(b"x"), b"x"), 404,
                 "BLOB_UPLOAD_UNKNOWN")
    assert_error(client.delete(location), 404, "BLOB_UPLOAD_UNKNOWN")


def test_finished_upload_is_closed(client: Client, name: str) -> None:
    location = client.upload_url(name)
    data = random_bytes(10)
    assert client.finish_upload(location, digest_of(data), data).status_code == 201
    assert_error(client.get(location), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_error(client.patch_chunk(location, b"more"), 404, "BLOB_UPLOAD_UNKNOWN")


@pytest.mark.parametrize("method", ["GET", "PATCH", "PUT", "DELETE"])
def test_unknown_upload(client: Client, name: str, method: str) -> None:
    url = f"/v2/{name}/blobs/uploads/3f6e0f0e-5b1c-4c3e-9a55-0123456789ab"
    if method == "PUT":
        url = with_params(client.url(url), [("digest", digest_of(b""))])
    response = client.request(method, url, data=b"")
    assert_error(response, 404, "BLOB_UPLOAD_UNKNOWN")


@pytest.mark.parametrize("upload_id", ["not-a-uuid", "...", "%2e%2e%2fetc", "a" * 300])
def test_garbage_upload_id(client: Client, name: str, upload_id: str) -> None:
    response = client.get(f"/v2/{name}/blobs/uploads/{upload_id}")
    assert_error(response, (400, 404), "BLOB_UPLOAD_UNKNOWN", "BLOB_UPLOAD_INVALID")


def test_upload_id_belongs_to_its_repository(client: Client, name: str) -> None:
    location = client.upload_url(name)
    client.patch_chunk(location, random_bytes(10), start=0)
    parts = urlsplit(location)
    other = repo_name()
    moved_path = parts.path.replace(f"/v2/{name}/", f"/v2/{other}/", 1)
    assert moved_path != parts.path
    moved = urlunsplit(parts._replace(path=moved_path))
    assert_error(client.get(moved), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_error(client.patch_chunk(moved, b"x"), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_error(client.finish_upload(moved, digest_of(b"x")), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_error(client.delete(moved), 404, "BLOB_UPLOAD_UNKNOWN")
    # and the session in its own repository is untouched
    assert client.get(location).headers["Range"] == "0-9"


def test_uploaded_blob_is_scoped_to_its_repository(client: Client, name: str) -> None:
    digest = client.push_blob(name, random_bytes(20))
    assert_no_blob(client, repo_name(), digest)


# -- mounting -----------------------------------------------------------------------------------


def test_mount_from_repository_holding_the_blob(client: Client, name: str) -> None:
    data = random_bytes(128)
    digest = client.push_blob(name, data)
    target = repo_name()
    response = client.mount(target, digest, name)
    assert_blob_created(client, response, target, digest)
    assert_blob(client, target, digest, data)


def test_mount_from_repository_without_the_blob(client: Client, name: str) -> None:
    client.push_blob(name, random_bytes(8))
    data = random_bytes(128)
    digest = digest_of(data)
    target = repo_name()
    response = client.mount(target, digest, name)
    assert response.status_code == 202, describe(response)
    assert response.headers["Docker-Upload-UUID"]
    # the fallback session works like any other
    done = client.finish_upload(client.follow(response.headers["Location"]), digest, data)
    assert_blob_created(client, done, target, digest)


def test_mount_without_from_opens_a_session(client: Client, name: str) -> None:
    digest = client.push_blob(name, random_bytes(16))
    target = repo_name()
    response = client.mount(target, digest, None)
    assert response.status_code == 202, describe(response)
    assert client.follow(response.headers["Location"])
    assert_no_blob(client, target, digest)


def test_mount_from_unknown_repository(client: Client) -> None:
    digest = digest_of(random_bytes(16))
    response = client.mount(repo_name(), digest, repo_name())
    assert response.status_code == 202, describe(response)


def test_mount_after_source_deleted_the_blob(client: Client, name: str) -> None:
    digest = client.push_blob(name, random_bytes(16))
    assert client.delete(f"/v2/{name}/blobs/{digest}").status_code == 202
    response = client.mount(repo_name(), digest, name)
    assert response.status_code == 202, describe(response)


def test_mount_with_malformed_digest(client: Client, name: str) -> None:
    response = client.mount(repo_name(), "sha256:nothex", name)
    if response.status_code != 202:
        assert_error(response, 400, "DIGEST_INVALID")


def test_mount_from_invalid_repository_name(client: Client) -> None:
    response = client.mount(repo_name(), digest_of(b"x"), "Bad//Name")
    if response.status_code != 202:
        assert_error(response, 400, "NAME_INVALID")


def test_mounted_blob_survives_delete_in_source(client: Client, name: str) -> None:
    data = random_bytes(50)
    digest = client.push_blob(name, data)
    target = repo_name()
    assert client.mount(target, digest, name).status_code == 201
    assert client.delete(f"/v2/{name}/blobs/{digest}").status_code == 202
    assert_blob(client, target, digest, data)
    assert_no_blob(client, name, digest)


def test_blob_digest_header_matches_content(client: Client, name: str) -> None:
    data = random_bytes(40)
    digest = client.push_blob(name, data)
    response = client.get(f"/v2/{name}/blobs/{digest}")
    assert digest_matches(response.headers["Docker-Content-Digest"], response.content)


def test_mount_from_the_same_repository(client: Client, name: str) -> None:
    data = random_bytes(30)
    digest = client.push_blob(name, data)
    assert_blob_created(client, client.mount(name, digest, name), name, digest)
    assert_blob(client, name, digest, data)


def test_parallel_sessions_for_the_same_content(client: Client, name: str) -> None:
    # Two builders pushing one layer at once: both succeed and one blob results.
    data = random_bytes(5000)
    digest = digest_of(data)
    first, second = client.upload_url(name), client.upload_url(name)
    assert client.patch_chunk(first, data[:2500], start=0).status_code == 202
    assert client.patch_chunk(second, data[:2500], start=0).status_code == 202
    assert_blob_created(client, client.finish_upload(first, digest, data[2500:]), name, digest)
    assert_blob_created(client, client.finish_upload(second, digest, data[2500:]), name, digest)
    assert_blob(client, name, digest, data)
