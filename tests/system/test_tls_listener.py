"""The HTTPS port answers plain HTTP with Go's 400 and keeps serving TLS, across reloads."""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path

import pytest
import requests

from tests.authkit import Pki
from tests.server import RunningRegistry, running_registry

GO_ANSWER = (b"HTTP/1.0 400 Bad Request\r\n\r\n"
             b"Client sent an HTTP request to an HTTPS server.\n")


def _plain_http(server: RunningRegistry) -> bytes:
    """Everything the server sends back to a plain-text request, up to its close."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw:
        raw.sendall(f"GET /v2/ HTTP/1.1\r\nHost: {server.host}\r\n\r\n".encode())
        answer = b""
        while chunk := raw.recv(4096):
            answer += chunk
    return answer


def _https_status(server: RunningRegistry, ca: Path) -> int:
    return requests.get(server.url + "/v2/", verify=str(ca), timeout=10,
                        headers={"Connection": "close"}).status_code


@pytest.mark.parametrize("workers", [1, 2])
def test_plain_http_gets_400_and_https_keeps_working(tmp_path: Path, workers: int) -> None:
    pki = Pki(tmp_path / "pki")
    cert, key = pki.issue("server")
    config = {"http": {"tls": {"certificate": str(cert), "key": str(key)}}}
    workdir = tmp_path / "server"
    workdir.mkdir()
    with running_registry(workdir, config, workers=workers) as server:
        for _ in range(4):  # a new connection each: SO_REUSEPORT spreads them over workers
            assert _plain_http(server) == GO_ANSWER
            assert _https_status(server, pki.ca_path) == 200
        assert pki.issue("server") == (cert, key)  # a new pair in the same files
        assert server.process is not None
        os.kill(server.process.pid, signal.SIGHUP)
        deadline = time.monotonic() + 10
        while (server.log_text().count("TLS certificate reloaded") < workers
               and time.monotonic() < deadline):
            time.sleep(0.1)
        assert server.log_text().count("TLS certificate reloaded") == workers
        for _ in range(4):
            assert _plain_http(server) == GO_ANSWER
            assert _https_status(server, pki.ca_path) == 200
