"""Blob bodies sent by sendfile: bytes, ranges, keep-alive reuse, aborts, drain, TLS.

Blobs here are large enough that a transfer cannot sit whole in the socket buffers, so a
client that stops reading really holds the server mid-transfer. On the `s3` backend the
same behaviour is checked against the streaming path.
"""

from __future__ import annotations

import os
import signal
import socket
import struct
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from tests.authkit import Pki
from tests.server import RunningRegistry
from tests.system.api.client import Client, digest_of, random_bytes, repo_name

MIB = 1 << 20
BIG = 24 * MIB + 3  # more than the kernel buffers both sides of a loopback connection hold


@pytest.fixture(scope="module")
def big_blob(registry: RunningRegistry) -> tuple[str, str, bytes]:
    """(repository, digest, data) of one large blob, pushed once for the module."""
    api = Client(registry.url)
    name = repo_name("sendfile")
    data = random_bytes(BIG)
    digest = api.push_blob(name, data)
    api.close()
    return name, digest, data


class Connection:
    """One keep-alive HTTP/1.1 connection, reading each response by its Content-Length."""

    def __init__(self, host: str, receive_buffer: int | None = None) -> None:
        hostname, port = host.rsplit(":", 1)
        self.host = host
        self.sock = socket.socket()
        if receive_buffer is not None:  # before connect, so the window stays small
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        self.sock.settimeout(30)
        self.sock.connect((hostname, int(port)))
        self._pending = b""

    def send(self, method: str, path: str, headers: dict[str, str] | None = None) -> None:
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}"]
        lines += [f"{key}: {value}" for key, value in (headers or {}).items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))

    def _more(self) -> bytes:
        data = self.sock.recv(4 * MIB)
        if not data:
            raise ConnectionError("the server closed the connection")
        return data

    def read_head(self) -> tuple[int, dict[str, str]]:
        while b"\r\n\r\n" not in self._pending:
            self._pending += self._more()
        head, _, self._pending = self._pending.partition(b"\r\n\r\n")
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines:
            key, _, value = line.partition(":")
            headers[key.strip().lower()] = value.strip()
        return int(status_line.split()[1]), headers

    def read_body(self, length: int) -> bytes:
        chunks = [self._pending[:length]]
        received = len(chunks[0])
        self._pending = self._pending[length:]
        while received < length:
            data = self._more()
            take = data[:length - received]
            chunks.append(take)
            received += len(take)
            self._pending += data[len(take):]
        return b"".join(chunks)

    def read_line(self) -> bytes:
        while b"\r\n" not in self._pending:
            self._pending += self._more()
        line, _, self._pending = self._pending.partition(b"\r\n")
        return line

    def read_response(self, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
        status, headers = self.read_head()
        if method == "HEAD":
            return status, headers, b""
        if headers.get("transfer-encoding", "").lower() == "chunked":
            chunks = []
            while size := int(self.read_line().split(b";")[0], 16):
                chunks.append(self.read_body(size))
                assert self.read_line() == b""
            assert self.read_line() == b""  # no trailers
            return status, headers, b"".join(chunks)
        return status, headers, self.read_body(int(headers.get("content-length", "0")))

    def request(self, method: str, path: str, headers: dict[str, str] | None = None,
                ) -> tuple[int, dict[str, str], bytes]:
        self.send(method, path, headers)
        return self.read_response(method)

    def close(self, reset: bool = False) -> None:
        if reset:  # RST instead of FIN
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()


@pytest.fixture
def connection(registry: RunningRegistry) -> Iterator[Connection]:
    conn = Connection(registry.host)
    yield conn
    conn.close()


def test_large_blob_bytes_headers_and_keep_alive(
        connection: Connection, big_blob: tuple[str, str, bytes]) -> None:
    name, digest, _ = big_blob
    path = f"/v2/{name}/blobs/{digest}"
    for _ in range(2):  # the same connection serves the blob again
        status, headers, body = connection.request("GET", path)
        assert status == 200
        assert headers["content-length"] == str(BIG)
        assert headers["docker-content-digest"] == digest
        assert headers["accept-ranges"] == "bytes"
        assert headers["content-type"] == "application/octet-stream"
        assert headers.get("connection", "").lower() != "close"
        assert digest_of(body) == digest
    status, _, _ = connection.request("GET", "/v2/")
    assert status == 200


@pytest.mark.parametrize(("header", "start", "end"), [
    ("bytes=0-0", 0, 0),
    ("bytes=1000-", 1000, BIG - 1),
    ("bytes=-5000000", BIG - 5000000, BIG - 1),
    ("bytes=7340032-17825791", 7340032, 17825791),
    ("bytes=5-99999999999", 5, BIG - 1),
])
def test_range_of_a_large_blob_then_reuse(
        connection: Connection, big_blob: tuple[str, str, bytes],
        header: str, start: int, end: int) -> None:
    name, digest, data = big_blob
    status, headers, body = connection.request("GET", f"/v2/{name}/blobs/{digest}",
                                               {"Range": header})
    assert status == 206
    assert headers["content-range"] == f"bytes {start}-{end}/{BIG}"
    assert headers["content-length"] == str(end - start + 1)
    assert body == data[start:end + 1]
    status, _, body = connection.request("GET", f"/v2/{name}/blobs/{digest}")
    assert status == 200
    assert body == data


def test_unsatisfiable_range_of_a_large_blob(
        connection: Connection, big_blob: tuple[str, str, bytes]) -> None:
    name, digest, _ = big_blob
    status, headers, _ = connection.request("GET", f"/v2/{name}/blobs/{digest}",
                                            {"Range": f"bytes={BIG}-"})
    assert status == 416
    if "content-range" in headers:
        assert headers["content-range"] == f"bytes */{BIG}"
    assert connection.request("HEAD", f"/v2/{name}/blobs/{digest}")[0] == 200


def test_pipelined_requests_get_whole_responses_in_order(
        connection: Connection, big_blob: tuple[str, str, bytes]) -> None:
    name, digest, data = big_blob
    path = f"/v2/{name}/blobs/{digest}"
    connection.send("GET", path)
    connection.send("GET", path, {"Range": "bytes=10-19"})
    connection.send("HEAD", path)
    connection.send("GET", path)
    status, _, body = connection.read_response()
    assert (status, body == data) == (200, True)
    status, _, body = connection.read_response()
    assert (status, body) == (206, data[10:20])
    status, headers, _ = connection.read_response("HEAD")
    assert (status, headers["content-length"]) == (200, str(BIG))
    status, _, body = connection.read_response()
    assert (status, body == data) == (200, True)


def _open_descriptors(registry: RunningRegistry, digest: str) -> list[str]:
    """Descriptors of the server's processes that refer to the blob's file."""
    assert registry.process is not None
    pids = [str(registry.process.pid)]
    for task in Path(f"/proc/{registry.process.pid}/task").iterdir():
        pids += (task / "children").read_text().split()
    found = []
    for pid in pids:
        for entry in Path(f"/proc/{pid}/fd").iterdir():
            try:
                target = os.readlink(entry)
            except OSError:
                continue  # closed while listing
            if digest.split(":", 1)[1] in target:
                found.append(target)
    return found


def _wait_until(condition: Callable[[], bool], timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


@pytest.mark.parametrize("reset", [False, True], ids=["fin", "rst"])
def test_client_abort_mid_transfer(registry: RunningRegistry, client: Client,
                                   big_blob: tuple[str, str, bytes], reset: bool) -> None:
    name, digest, data = big_blob
    log_start = len(registry.log_text())
    aborted = Connection(registry.host, receive_buffer=64 * 1024)
    aborted.send("GET", f"/v2/{name}/blobs/{digest}")
    status, _ = aborted.read_head()
    assert status == 200
    aborted.read_body(MIB)  # the server is now mid-transfer, blocked on this client
    aborted.close(reset=reset)

    response = client.get(f"/v2/{name}/blobs/{digest}")
    assert response.status_code == 200
    assert response.content == data
    # The transfer stops and lets go of the file: nothing keeps sending into the void.
    if registry.config["storage"].get("filesystem"):
        assert _wait_until(lambda: not _open_descriptors(registry, digest)), \
            _open_descriptors(registry, digest)
    log = registry.log_text()[log_start:]
    assert "Traceback" not in log
    assert "Error handling request" not in log


def test_stalled_download_finishes_after_sigterm(
        start_registry: Callable[..., RunningRegistry]) -> None:
    server = start_registry({"http": {"draintimeout": "30s"}})
    assert server.process is not None
    api = Client(server.url)
    name = repo_name("drain")
    data = random_bytes(BIG)
    digest = api.push_blob(name, data)
    api.close()
    conn = Connection(server.host, receive_buffer=64 * 1024)
    conn.send("GET", f"/v2/{name}/blobs/{digest}")
    status, _ = conn.read_head()
    assert status == 200
    first = conn.read_body(MIB)
    os.kill(server.process.pid, signal.SIGTERM)
    assert _wait_until(lambda: "draining" in server.log_text())
    rest = conn.read_body(BIG - MIB)
    assert digest_of(first + rest) == digest
    conn.close()
    assert server.process.wait(30) == 0


def test_tls_download(start_registry: Callable[..., RunningRegistry],
                      tmp_path: Path) -> None:
    pki = Pki(tmp_path / "pki")
    cert, key = pki.issue("server")
    server = start_registry({"http": {"tls": {"certificate": str(cert), "key": str(key)}}})
    session = requests.Session()
    session.verify = str(pki.ca_path)
    session.trust_env = False  # else REQUESTS_CA_BUNDLE would override `verify`
    api = Client(server.url, session)
    name = repo_name("tls")
    data = random_bytes(BIG)
    digest = api.push_blob(name, data)
    path = f"/v2/{name}/blobs/{digest}"
    response = api.get(path)
    assert response.status_code == 200
    assert response.headers["Content-Length"] == str(BIG)
    assert response.content == data
    response = api.get(path, headers={"Range": "bytes=100-199"})
    assert response.status_code == 206
    assert response.headers["Content-Range"] == f"bytes 100-199/{BIG}"
    assert response.content == data[100:200]
    assert api.get("/v2/").status_code == 200
    api.close()
