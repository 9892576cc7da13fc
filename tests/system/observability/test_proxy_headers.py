"""Behind a reverse proxy: Location headers follow X-Forwarded-* unless http.host is set."""

from __future__ import annotations

from collections.abc import Callable

import requests

from tests.system.observability.conftest import ObservedRegistry

FORWARDED = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "registry.example.com, lb:80"}


def _location(server: ObservedRegistry, headers: dict[str, str]) -> str:
    response = requests.post(server.url + "/v2/team/app/blobs/uploads/", timeout=10,
                             headers={"Content-Length": "0", **headers})
    assert response.status_code == 202, response.text
    return response.headers["Location"]


def test_forwarded_headers_shape_locations(serve: Callable[..., ObservedRegistry]) -> None:
    server = serve()
    assert _location(server, FORWARDED).startswith("https://registry.example.com/v2/team/app/")
    assert _location(server, {}).startswith(f"http://{server.host}/v2/team/app/")
    odd = _location(server, {"X-Forwarded-Proto": "gopher"})
    assert odd.startswith(f"http://{server.host}/")


def test_http_host_wins(serve: Callable[..., ObservedRegistry]) -> None:
    server = serve({"http": {"host": "https://dockyard.internal:8443"}})
    assert _location(server, FORWARDED).startswith("https://dockyard.internal:8443/v2/")
