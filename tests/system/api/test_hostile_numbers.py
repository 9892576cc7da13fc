"""Numbers a client may send (`n`, `Range`, `Content-Range`) that are not plain ASCII digits
of a sane length: each is refused or ignored as the protocol says, never a 500.

"²" and "٣" pass `str.isdigit()`; more than 4,300 digits make `int()` raise.
"""

from __future__ import annotations

import pytest

from tests.system.api import client as content
from tests.system.api.client import Client, assert_error, describe

HUGE = "9" * 5000  # past int()'s 4,300 digits, within aiohttp's 8 KiB per header
NOT_A_COUNT = ["%C2%B2", "%D9%A3", "%EF%BC%95", HUGE, "9" * 19, "+5", "%205", "0x10", ""]


def _still_serves(client: Client) -> None:
    response = client.get("/v2/")
    assert response.status_code in (200, 401), describe(response)


@pytest.mark.parametrize("n", NOT_A_COUNT)
def test_catalog_refuses_a_count_that_is_not_ascii_digits(client: Client, n: str) -> None:
    assert_error(client.get(f"/v2/_catalog?n={n}"), 400, "PAGINATION_NUMBER_INVALID")
    _still_serves(client)


@pytest.mark.parametrize("n", NOT_A_COUNT)
def test_tags_refuse_a_count_that_is_not_ascii_digits(client: Client, name: str, n: str) -> None:
    client.push_image(name, "v1")
    assert_error(client.get(f"/v2/{name}/tags/list?n={n}"), 400, "PAGINATION_NUMBER_INVALID")
    assert client.tags(name) == ["v1"]


@pytest.mark.parametrize("n", NOT_A_COUNT)
def test_referrers_refuse_a_count_that_is_not_ascii_digits(client: Client, name: str,
                                                            n: str) -> None:
    manifest = content.image_manifest()
    client.push_manifest(name, manifest, "v1")
    response = client.get(f"/v2/{name}/referrers/{manifest.digest}?n={n}")
    assert_error(response, 400, "PAGINATION_NUMBER_INVALID")
    _still_serves(client)


def test_largest_count_still_reads(client: Client, name: str) -> None:
    client.push_image(name, "v1")
    response = client.get(f"/v2/{name}/tags/list?n={'9' * 18}")
    assert response.status_code == 200, describe(response)
    assert response.json()["tags"] == ["v1"]


@pytest.mark.parametrize("header", [
    f"bytes=0-{HUGE}", f"bytes={HUGE}-", f"bytes=-{HUGE}", f"bytes={HUGE}-9",
    "bytes=\u00b2-", "bytes=0-\u0663", f"bytes=0-{'9' * 19}",
])
def test_range_that_is_not_ascii_digits_is_ignored(client: Client, name: str,
                                                   header: str) -> None:
    """RFC 9110 lets a server ignore a Range it cannot read: the whole blob is served."""
    data = content.random_bytes(100)
    digest = client.push_blob(name, data)
    response = client.get(f"/v2/{name}/blobs/{digest}", headers={"Range": header.encode()})
    assert response.status_code == 200, describe(response)
    assert response.content == data
    ranged = client.get(f"/v2/{name}/blobs/{digest}", headers={"Range": "bytes=10-19"})
    assert ranged.status_code == 206, describe(ranged)
    assert ranged.content == data[10:20]


@pytest.mark.parametrize("header", [
    f"0-{HUGE}", f"{HUGE}-9", "\u00b2-\u00b3", "0-\u0669",
    f"0-{'9' * 19}",
])
def test_content_range_that_is_not_ascii_digits_is_refused(client: Client, name: str,
                                                           header: str) -> None:
    data = content.random_bytes(10)
    location = client.upload_url(name)
    bad = client.patch(location, data=data, headers={
        "Content-Range": header.encode(), "Content-Type": "application/octet-stream"})
    assert_error(bad, 416, "BLOB_UPLOAD_INVALID")
    assert bad.headers["Range"] == "0-0"
    # The session is intact: the same chunk with a readable range still goes through.
    good = client.patch_chunk(location, data, start=0)
    assert good.status_code == 202, describe(good)
    digest = content.digest_of(data)
    done = client.finish_upload(client.follow(good.headers["Location"]), digest)
    assert done.status_code == 201, describe(done)


def test_monolithic_upload_with_unreadable_content_range(client: Client, name: str) -> None:
    data = content.random_bytes(10)
    response = client.post(f"/v2/{name}/blobs/uploads/", params={"digest": content.digest_of(data)},
                           data=data, headers={"Content-Range": f"0-{HUGE}",
                                               "Content-Type": "application/octet-stream"})
    assert_error(response, (400, 416), "BLOB_UPLOAD_INVALID")
    _still_serves(client)
