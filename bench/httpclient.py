"""A small blocking HTTP/1.1 client for the benchmark's Python-driven traffic.

Large transfers go straight between a caller's buffer and the socket (``sendall`` of a
memoryview, ``recv_into`` a reused 4 MiB buffer), so the client spends as little CPU per
byte as Python allows and is not what limits throughput. Only loopback hosts are accepted.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit

SOCKET_BUFFER = 4 * 1024 * 1024
READ_BUFFER = 4 * 1024 * 1024
MAX_HEADER_BYTES = 64 * 1024
MAX_BODY_BYTES = 64 * 1024 * 1024
LOOPBACK = ("127.0.0.1", "localhost", "::1")


Sink = Callable[[memoryview], None]
"""Takes each piece of a response body as it is read; the view is valid only during the call."""


class HttpError(Exception):
    """A protocol or status failure while talking to a target."""


@dataclass
class Response:
    status: int
    reason: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    received: int = 0  # body bytes read from the wire, kept or not

    def header(self, name: str, default: str = "") -> str:
        return self.headers.get(name.lower(), default)


def path_of(location: str) -> str:
    """The request target (path and query) of an absolute or relative Location."""
    parts = urlsplit(location)
    if parts.hostname is not None and parts.hostname not in LOOPBACK:
        raise HttpError(f"refusing to follow a non-loopback location: {location}")
    target = parts.path or "/"
    return f"{target}?{parts.query}" if parts.query else target


class Connection:
    """One keep-alive HTTP/1.1 connection to a loopback server."""

    def __init__(self, host: str, port: int, timeout: float = 120.0) -> None:
        if host not in LOOPBACK:
            raise HttpError(f"benchmark targets must be loopback, not {host}")
        self.host = host
        self.port = port
        self.timeout = timeout
        self.sock: socket.socket | None = None
        self.pending = bytearray()
        self.scratch = memoryview(bytearray(READ_BUFFER))

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        self.pending.clear()

    def connect(self) -> Connection:
        """Open the socket now, so that connecting is not part of a timed transfer."""
        self._connect()
        return self

    def _connect(self) -> socket.socket:
        if self.sock is None:
            sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SOCKET_BUFFER)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCKET_BUFFER)
            self.sock = sock
        return self.sock

    def request(
        self,
        method: str,
        target: str,
        headers: dict[str, str] | None = None,
        body: bytes | bytearray | memoryview | None = None,
        *,
        keep_body: bool = True,
        sink: Sink | None = None,
    ) -> Response:
        """Send one request and read its whole response.

        With ``keep_body=False`` the body is read and counted but not stored, which is
        how downloads are measured; ``sink`` is given every piece of the body as it is
        read (to hash it on the way, for one). A request on a keep-alive connection that the server
        closed while idle is retried once on a new connection.
        """
        for attempt in (1, 2):
            fresh = self.sock is None
            try:
                self._send(method, target, headers or {}, body)
                return self._read_response(method, keep_body, sink)
            except (ConnectionResetError, BrokenPipeError, _ClosedBeforeResponse) as exc:
                self.close()
                if fresh or attempt == 2:
                    raise HttpError(f"{method} {target}: connection lost: {exc!r}") from exc
        raise AssertionError("unreachable")

    def stream(self, method: str, target: str, length: int, pieces: Iterator[memoryview],
               headers: dict[str, str] | None = None) -> Response:
        """A request whose body is sent piece by piece, for bodies too big to hold."""
        self._send(method, target, {**(headers or {}), "Content-Length": str(length)}, None)
        sock = self._connect()
        sent = 0
        for piece in pieces:
            sock.sendall(piece)
            sent += piece.nbytes
        if sent != length:
            raise HttpError(f"{method} {target}: sent {sent} bytes, announced {length}")
        return self._read_response(method, keep_body=True)

    def _send(self, method: str, target: str, headers: dict[str, str],
              body: bytes | bytearray | memoryview | None) -> None:
        sock = self._connect()
        lines = [f"{method} {target} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        names = {name.lower() for name in headers}
        lines.extend(f"{name}: {value}" for name, value in headers.items())
        if "content-length" not in names and (body is not None or method in ("PUT", "POST",
                                                                                "PATCH")):
            lines.append(f"Content-Length: {memoryview(body).nbytes if body is not None else 0}")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        if body is not None and memoryview(body).nbytes <= 64 * 1024:
            sock.sendall(head + bytes(body))
        else:
            sock.sendall(head)
            if body is not None:
                sock.sendall(body)

    def _recv_more(self) -> int:
        assert self.sock is not None
        count = self.sock.recv_into(self.scratch)
        if count:
            self.pending += self.scratch[:count]
        return count

    def _read_response(self, method: str, keep_body: bool, sink: Sink | None = None,
                       ) -> Response:
        while True:
            end = self.pending.find(b"\r\n\r\n")
            if end >= 0:
                break
            if len(self.pending) > MAX_HEADER_BYTES:
                raise HttpError("response header too large")
            if not self._recv_more():
                if not self.pending:
                    raise _ClosedBeforeResponse("server closed the connection")
                raise HttpError("connection closed inside a response header")
        head = bytes(self.pending[:end]).decode("latin-1")
        del self.pending[: end + 4]
        status_line, *header_lines = head.split("\r\n")
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
            raise HttpError(f"bad status line: {status_line!r}")
        status = int(parts[1])
        response = Response(status, parts[2] if len(parts) > 2 else "")
        for line in header_lines:
            name, _, value = line.partition(":")
            response.headers[name.strip().lower()] = value.strip()
        if status == 100:
            return self._read_response(method, keep_body, sink)
        if method == "HEAD" or status in (204, 304):
            pass
        elif response.header("transfer-encoding").lower() == "chunked":
            self._read_chunked(response, keep_body, sink)
        elif response.header("content-length"):
            self._read_length(response, int(response.header("content-length")), keep_body,
                              sink)
        else:
            self._read_to_close(response, keep_body, sink)
        if response.header("connection").lower() == "close":
            self.close()
        return response

    def _read_length(self, response: Response, length: int, keep_body: bool,
                     sink: Sink | None = None) -> None:
        if keep_body and length > MAX_BODY_BYTES:
            raise HttpError(f"response body of {length} bytes is too large to keep")
        kept = bytearray()
        taken = min(length, len(self.pending))
        if keep_body:
            kept += self.pending[:taken]
        if sink is not None and taken:
            sink(memoryview(self.pending)[:taken])
        del self.pending[:taken]
        remaining = length - taken
        assert self.sock is not None
        while remaining > 0:
            view = self.scratch[: min(remaining, READ_BUFFER)]
            count = self.sock.recv_into(view)
            if count == 0:
                raise HttpError(f"connection closed with {remaining} body bytes missing")
            if keep_body:
                kept += view[:count]
            if sink is not None:
                sink(view[:count])
            remaining -= count
        response.body = bytes(kept)
        response.received = length

    def _read_line(self) -> bytes:
        while True:
            end = self.pending.find(b"\r\n")
            if end >= 0:
                line = bytes(self.pending[:end])
                del self.pending[: end + 2]
                return line
            if len(self.pending) > MAX_HEADER_BYTES:
                raise HttpError("chunk header too long")
            if not self._recv_more():
                raise HttpError("connection closed inside a chunked body")

    def _read_chunked(self, response: Response, keep_body: bool, sink: Sink | None = None,
                      ) -> None:
        kept = bytearray()
        total = 0
        while True:
            size = int(self._read_line().split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while self._read_line():  # trailers, then the empty line
                    pass
                break
            total += size
            if total > MAX_BODY_BYTES:
                raise HttpError("chunked response body too large")
            while len(self.pending) < size + 2:
                if not self._recv_more():
                    raise HttpError("connection closed inside a chunk")
            if keep_body:
                kept += self.pending[:size]
            if sink is not None:
                sink(memoryview(self.pending)[:size])
            del self.pending[: size + 2]
        response.body = bytes(kept)
        response.received = total

    def _read_to_close(self, response: Response, keep_body: bool, sink: Sink | None = None,
                       ) -> None:
        while self._recv_more():
            if len(self.pending) > MAX_BODY_BYTES:
                raise HttpError("response body too large")
        if sink is not None:
            sink(memoryview(self.pending))
        response.received = len(self.pending)
        response.body = bytes(self.pending) if keep_body else b""
        self.close()


class _ClosedBeforeResponse(Exception):
    pass


def expect(response: Response, *statuses: int, what: str) -> Response:
    """Raise with the server's answer unless the status is one of ``statuses``."""
    if response.status not in statuses:
        detail = response.body[:300].decode("utf-8", "replace")
        raise HttpError(f"{what}: HTTP {response.status} {response.reason}: {detail}")
    return response
