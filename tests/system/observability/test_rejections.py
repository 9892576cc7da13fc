"""Malformed requests and clients that go away mid-upload: counted, logged in one short line
each at INFO, at most LINES_PER_MINUTE lines per reason, never a traceback."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from urllib.parse import urlsplit

import requests

from dockyard.observability.rejections import LINES_PER_MINUTE
from tests.system.observability.conftest import ObservedRegistry, scrape, value, wait_for

REJECTED = "dockyard_http_rejected_requests_total"
MALFORMED = [
    b"GARBAGE\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nX-Long: " + b"a" * 9000 + b"\r\n\r\n",
    b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\r\n\r\n",
    b"GET /v2/ HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
    b"GET /v2/ HTTP/9.9\r\nHost: x\r\n\r\n",
]


def _exchange(server: ObservedRegistry, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as connection:
        connection.sendall(data)
        return connection.recv(4096)


def _abandon_upload(server: ObservedRegistry) -> None:
    """A PATCH that announces 1 MiB, sends 300 KiB and hangs up."""
    started = requests.post(f"{server.url}/v2/hostile/app/blobs/uploads/", timeout=10)
    assert started.status_code == 202, started.text
    path = urlsplit(started.headers["Location"]).path
    head = (f"PATCH {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {1 << 20}\r\n"
            "Content-Type: application/octet-stream\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as connection:
        connection.sendall(head + b"x" * (300 << 10))
        time.sleep(0.05)


def _rejected(server: ObservedRegistry, reason: str) -> float:
    return value(scrape(server), REJECTED, reason=reason)


def test_hostile_clients_cost_one_counted_line_each_at_most(
        serve: Callable[..., ObservedRegistry]) -> None:
    server = serve()
    for index in range(50):
        answer = _exchange(server, MALFORMED[index % len(MALFORMED)])
        assert answer.startswith(b"HTTP/1.") and b" 400 " in answer.split(b"\r\n")[0], answer
    for _ in range(10):
        _abandon_upload(server)
    wait_for(lambda: _rejected(server, "disconnected") >= 10, message="10 disconnects counted")
    assert _rejected(server, "malformed") == 50
    assert _rejected(server, "disconnected") == 10
    assert requests.get(f"{server.url}/v2/", timeout=10).status_code == 200

    log = server.log_text()
    assert "Traceback" not in log, log
    assert " ERROR " not in log, log
    malformed = [line for line in log.splitlines() if "malformed request from" in line]
    gone = [line for line in log.splitlines() if "went away mid-request" in line]
    assert 0 < len(malformed) <= LINES_PER_MINUTE, log
    assert 0 < len(gone) <= LINES_PER_MINUTE, log
    assert all(" INFO " in line or " DEBUG " in line for line in malformed + gone), log
