"""/healthz, /readyz and distribution's /debug/health, against backends that come and go."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from tests.backends import POSTGRES_HOST, POSTGRES_PORT, Services
from tests.proxy import CuttableProxy
from tests.system.observability.conftest import ObservedRegistry, json_lines, wait_for


def _ready(server: ObservedRegistry) -> requests.Response:
    return requests.get(server.url + "/readyz", timeout=10)


def _until(get: Callable[[], requests.Response], accept: Callable[[requests.Response], bool],
           message: str, timeout: float = 10.0) -> requests.Response:
    """The first response `accept` takes (a 503 Response is falsy, so wait_for can't return it)."""
    seen: list[requests.Response] = []

    def check() -> bool:
        seen[:] = [get()]
        return accept(seen[0])

    wait_for(check, timeout=timeout, message=message)
    return seen[0]


def test_alive_and_ready(serve: Callable[..., ObservedRegistry]) -> None:
    server = serve()
    assert requests.get(server.url + "/healthz", timeout=5).status_code == 200
    response = _ready(server)
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"database": "ok", "storage": "ok"}}


def test_not_ready_without_storage(serve: Callable[..., ObservedRegistry]) -> None:
    server = serve()
    blobs_root = server.root
    moved = blobs_root.with_name("moved-away")
    blobs_root.rename(moved)
    try:
        response = _until(lambda: _ready(server), lambda r: r.status_code == 503,
                          "readyz to fail")
        assert "storage" in response.json()["checks"]
        assert response.json()["checks"]["storage"] != "ok"
        assert requests.get(server.url + "/healthz", timeout=5).status_code == 200
    finally:
        moved.rename(blobs_root)
    wait_for(lambda: _ready(server).status_code == 200, message="readyz to recover")


@pytest.fixture
def database_proxy(services: Services) -> Iterator[tuple[CuttableProxy, str]]:
    """A fresh PostgreSQL database reached through a proxy the test can cut."""
    proxy = CuttableProxy(POSTGRES_HOST, POSTGRES_PORT)
    url = services.postgres.create(host="127.0.0.1", port=proxy.port)
    try:
        yield proxy, url
    finally:
        proxy.cut()


def test_readiness_follows_the_database(serve: Callable[..., ObservedRegistry],
                                        database_proxy: tuple[CuttableProxy, str]) -> None:
    proxy, url = database_proxy
    server = serve({"database": {"url": url, "connect_timeout": "1s"},
                    "log": {"formatter": "json"}})
    assert _ready(server).status_code == 200

    proxy.cut()
    response = _until(lambda: _ready(server), lambda r: r.status_code == 503,
                      "readyz to fail")
    assert response.json()["checks"]["database"] != "ok"
    assert response.json()["checks"]["storage"] == "ok"
    assert requests.get(server.url + "/healthz", timeout=5).status_code == 200
    # A request during the outage: every line it logs carries its id.
    failed = requests.get(server.url + "/v2/a/b/manifests/latest",
                          headers={"X-Request-Id": "outage-42"}, timeout=15)
    assert failed.status_code in (500, 503)
    assert failed.headers["X-Request-Id"] == "outage-42"

    proxy.restore()
    wait_for(lambda: _ready(server).status_code == 200, timeout=15,
             message="readyz to recover")
    assert requests.get(server.url + "/v2/a/b/manifests/latest",
                        timeout=10).status_code == 404

    lines = [line for line in json_lines(server) if line.get("request_id") == "outage-42"]
    loggers = {line["logger"] for line in lines}
    assert "dockyard.access" in loggers and len(loggers) >= 2, lines


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A port bound but not listening: connections are refused, and no server can take it."""
    with socket.socket() as placeholder:
        placeholder.bind(("127.0.0.1", 0))
        yield placeholder.getsockname()[1]


def test_debug_health_checks(serve: Callable[..., ObservedRegistry], tmp_path: Path,
                             closed_port: int) -> None:
    switch = tmp_path / "maintenance"
    server = serve({"health": {
        "storagedriver": {"enabled": True, "interval": "1s"},
        "file": [{"file": str(switch), "interval": "100ms"}],
        "tcp": [{"addr": f"127.0.0.1:{closed_port}", "interval": "100ms", "timeout": "1s",
                 "threshold": 2}],
    }})

    def health() -> requests.Response:
        return requests.get(server.debug_url + "/debug/health", timeout=5)

    failing = _until(health, lambda r: r.status_code == 503, "tcp check to fail")
    assert set(failing.json()) == {f"127.0.0.1:{closed_port}"}

    switch.write_text("down for maintenance")
    failing = _until(health, lambda r: str(switch) in r.json(), "file check to fail")
    assert "exists" in failing.json()[str(switch)]
    switch.unlink()
    wait_for(lambda: str(switch) not in health().json(), message="file check to pass")
