"""The API root, health check and the headers and error format shared by every endpoint."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from tests.server import RunningRegistry
from tests.system.api.client import (
    API_VERSION,
    API_VERSION_HEADER,
    Client,
    assert_error,
    assert_error_body,
    describe,
    digest_of,
    random_bytes,
    raw_request,
)

UNKNOWN_DIGEST = digest_of(b"dockyard: content nobody pushed")


def test_version_check_returns_empty_object(client: Client) -> None:
    response = client.get("/v2/")
    assert response.status_code == 200
    assert response.headers[API_VERSION_HEADER] == API_VERSION
    assert response.headers["Content-Type"].split(";")[0] == "application/json"
    assert response.json() == {}


def test_head_version_check(client: Client) -> None:
    response = client.head("/v2/")
    assert response.status_code == 200
    assert response.headers[API_VERSION_HEADER] == API_VERSION


def test_healthz(client: Client) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.headers[API_VERSION_HEADER] == API_VERSION


def _requests_to_check(name: str) -> list[tuple[str, str]]:
    """A spread of requests over every endpoint family, successes and failures alike."""
    return [
        ("GET", "/v2/"),
        ("GET", "/healthz"),
        ("GET", "/v2/_catalog"),
        ("GET", f"/v2/{name}/tags/list"),
        ("GET", f"/v2/{name}/manifests/latest"),
        ("HEAD", f"/v2/{name}/manifests/latest"),
        ("GET", f"/v2/{name}/manifests/sha256:nothex"),
        ("DELETE", f"/v2/{name}/manifests/{UNKNOWN_DIGEST}"),
        ("GET", f"/v2/{name}/blobs/{UNKNOWN_DIGEST}"),
        ("HEAD", f"/v2/{name}/blobs/{UNKNOWN_DIGEST}"),
        ("DELETE", f"/v2/{name}/blobs/{UNKNOWN_DIGEST}"),
        ("POST", f"/v2/{name}/blobs/uploads/"),
        ("GET", f"/v2/{name}/blobs/uploads/00000000-0000-0000-0000-000000000000"),
        ("GET", f"/v2/{name}/referrers/{UNKNOWN_DIGEST}"),
        ("GET", "/v2/Upper/Case/tags/list"),
        ("GET", "/v2/no/such/endpoint/here"),
    ]


def test_api_version_header_on_every_response(client: Client, name: str) -> None:
    client.push_image(name)
    for method, path in _requests_to_check(name):
        response = client.request(method, path, headers={"Content-Length": "0"})
        assert response.headers.get(API_VERSION_HEADER) == API_VERSION, describe(response)


def test_every_error_is_a_json_envelope(client: Client, name: str) -> None:
    for method, path in _requests_to_check(name):
        if method == "HEAD":
            continue
        response = client.request(method, path, headers={"Content-Length": "0"})
        if response.status_code >= 400:
            assert_error_body(response)


def test_request_id_is_generated(client: Client) -> None:
    first = client.get("/v2/").headers.get("X-Request-Id")
    second = client.get("/v2/").headers.get("X-Request-Id")
    assert first and second
    assert first != second


def test_request_id_is_echoed(client: Client, name: str) -> None:
    for path in ("/v2/", f"/v2/{name}/manifests/missing"):
        response = client.get(path, headers={"X-Request-Id": "dockyard-test-42"})
        assert response.headers.get("X-Request-Id") == "dockyard-test-42"


@pytest.mark.parametrize("value", ["x" * 2000, "caf\xe9", "a b\tc", ""])
def test_odd_request_ids_are_harmless(registry: RunningRegistry, value: str) -> None:
    response = raw_request(registry.host, f"GET /v2/ HTTP/1.1\nX-Request-Id: {value}")
    assert response.status == 200
    echoed = response.headers.get("x-request-id", "")
    assert echoed
    assert "\n" not in echoed and "\r" not in echoed


def test_request_id_on_errors(client: Client, name: str) -> None:
    response = client.get(f"/v2/{name}/blobs/{UNKNOWN_DIGEST}")
    assert response.status_code == 404
    assert response.headers.get("X-Request-Id")


def test_unknown_route_is_a_json_404(client: Client) -> None:
    response = client.get("/v2/some/repo/widgets/x")
    assert_error(response, 404)


def test_unsupported_method_is_a_client_error(client: Client, name: str) -> None:
    for method, path in [("PATCH", "/v2/"), ("DELETE", f"/v2/{name}/tags/list"),
                         ("PUT", f"/v2/{name}/blobs/{UNKNOWN_DIGEST}"),
                         ("POST", f"/v2/{name}/manifests/latest")]:
        response = client.request(method, path, data=b"")
        assert_error(response, (404, 405))


@pytest.mark.parametrize("path", [
    "/v2/%2e%2e/%2e%2e/etc/passwd/manifests/latest",
    "/v2/t/x/manifests/%00",
    "/v2/t/x/manifests/" + "a" * 5000,
    "/v2/t/x/blobs/sha256:" + "0" * 64 + "%0a",
    "/v2/t/x/blobs/sha256%3a" + "0" * 64,
    "/v2/t/x/blobs/uploads/..%2f..%2f..%2fetc",
    "/v2/t/x/blobs/uploads/%00",
    "/v2/t/x/tags/list?n=99999999999999999999999",
    "/v2/t/x/tags/list?last=%ff%fe",
    "/v2/_catalog?n=-5",
    "/v2/t/x/referrers/sha256:" + "0" * 64 + "?artifactType=%00",
    "/v2/t/x/manifests/latest?tag=%ff",
])
def test_garbage_input_never_causes_a_server_error(client: Client, path: str) -> None:
    # Client raises ServerError on any 5xx; errors must still use the envelope.
    response = client.get(path)
    if response.status_code >= 400:
        assert_error_body(response)


@pytest.mark.parametrize("header", [
    "Content-Range: zzz",
    "Content-Range: 5-2",
    "Content-Range: -1-4",
    "Content-Range: 0-99999999999999999999999999",
    "Content-Length: 3",
])
def test_garbage_upload_headers_never_cause_a_server_error(
        client: Client, registry: RunningRegistry, name: str, header: str) -> None:
    location = urlsplit(client.upload_url(name))
    target = location.path + (f"?{location.query}" if location.query else "")
    body = random_bytes(5)
    extra = "" if header.startswith("Content-Length") else f"\nContent-Length: {len(body)}"
    response = raw_request(registry.host, f"PATCH {target} HTTP/1.1\n{header}{extra}", body)
    assert response.status < 500
