"""A counting TCP proxy: relays a mirror's HTTP/1.1 traffic to its upstream and records every
exchange (method, path, status, body bytes relayed, times).

    python bench/counting_proxy.py LISTEN_PORT UPSTREAM_PORT

Run as its own process, so that relaying never competes with the benchmark's client for one
interpreter lock. Bytes are forwarded as they arrive; the proxy only reads request and
response heads, and counts bodies by their framing (`Content-Length`, chunked, or to close),
so the byte counts are exact for any server behind it, including a response cut short.

Control is on stdin/stdout, one line each way: `stats` answers one JSON line with every
exchange since the last `reset` (and the raw byte totals); `reset` forgets them and answers
`{}`. Connections are loopback only.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass

READ_SIZE = 1 << 20
MAX_HEAD = 64 * 1024
HOST = "127.0.0.1"


@dataclass
class Exchange:
    """One request and what came back for it."""

    method: str
    path: str
    started: float  # time.monotonic() when the request head was complete (system-wide clock)
    status: int = 0  # 0: no response head seen
    body_bytes: int = 0  # response body bytes relayed
    expected: int = -1  # Content-Length, -1 if none (chunked or to close)
    complete: bool = False  # the body ended where its framing said
    first_byte: float = 0.0  # when the response head was complete
    finished: float = 0.0  # when the body ended or the connection closed


class Ledger:
    """Every exchange through the proxy, and the raw byte totals per direction."""

    def __init__(self) -> None:
        self.exchanges: list[Exchange] = []
        self.bytes_up = 0  # mirror -> upstream
        self.bytes_down = 0  # upstream -> mirror
        self.connections = 0

    def count_up(self, size: int) -> None:
        self.bytes_up += size

    def count_down(self, size: int) -> None:
        self.bytes_down += size

    def reset(self) -> None:
        self.exchanges = [exchange for exchange in self.exchanges if not exchange.finished]
        self.bytes_up = self.bytes_down = self.connections = 0

    def snapshot(self) -> dict[str, object]:
        return {"bytes_up": self.bytes_up, "bytes_down": self.bytes_down,
                "connections": self.connections,
                "open": sum(1 for exchange in self.exchanges if not exchange.finished),
                "exchanges": [asdict(exchange) for exchange in self.exchanges]}


def _head_fields(head: bytes) -> tuple[str, dict[str, str]]:
    first, *lines = head.decode("latin-1").split("\r\n")
    headers: dict[str, str] = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return first, headers


class RequestParser:
    """The mirror's side: request heads (bodies skipped by Content-Length)."""

    def __init__(self, ledger: Ledger, pending: deque[Exchange]) -> None:
        self._ledger = ledger
        self._pending = pending
        self._buffer = bytearray()
        self._skip = 0

    def feed(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            if self._skip:
                taken = min(self._skip, len(view))
                self._skip -= taken
                view = view[taken:]
                continue
            self._buffer += view
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buffer) > MAX_HEAD:
                    raise ValueError("request head too large")
                return
            first, headers = _head_fields(bytes(self._buffer[:end]))
            view = memoryview(bytes(self._buffer[end + 4 :]))
            self._buffer.clear()
            method, _, rest = first.partition(" ")
            exchange = Exchange(method, rest.rpartition(" ")[0], time.monotonic())
            self._ledger.exchanges.append(exchange)
            self._pending.append(exchange)
            self._skip = int(headers.get("content-length", "0") or 0)


class ResponseParser:
    """The upstream's side: response heads and body framing, matched to requests in order."""

    def __init__(self, pending: deque[Exchange]) -> None:
        self._pending = pending
        self._buffer = bytearray()
        self._current: Exchange | None = None
        self._remaining = 0  # body bytes left (fixed length) or in the current chunk
        self._mode = "head"  # head, length, chunk-size, chunk-data, chunk-end, trailer, close

    def feed(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            if self._mode in ("length", "chunk-data", "close"):
                taken = len(view) if self._mode == "close" else min(self._remaining, len(view))
                assert self._current is not None
                self._current.body_bytes += taken
                view = view[taken:]
                if self._mode != "close":
                    self._remaining -= taken
                    if self._remaining == 0:
                        if self._mode == "length":
                            self._finish(True)
                        else:
                            self._mode = "chunk-end"
                continue
            self._buffer += view
            view = memoryview(b"")
            view = self._parse_lines()

    def _parse_lines(self) -> memoryview:
        """Consume heads and chunk framing from the buffer; return body bytes that follow."""
        while True:
            if self._mode == "head":
                end = self._buffer.find(b"\r\n\r\n")
                if end < 0:
                    if len(self._buffer) > MAX_HEAD:
                        raise ValueError("response head too large")
                    return memoryview(b"")
                first, headers = _head_fields(bytes(self._buffer[:end]))
                del self._buffer[: end + 4]
                self._start(first, headers)
            elif self._mode in ("chunk-size", "chunk-end", "trailer"):
                end = self._buffer.find(b"\r\n")
                if end < 0:
                    return memoryview(b"")
                line = bytes(self._buffer[:end])
                del self._buffer[: end + 2]
                if self._mode == "chunk-end":
                    self._mode = "chunk-size"
                elif self._mode == "trailer":
                    if not line:
                        self._finish(True)
                else:
                    size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                    if size == 0:
                        self._mode = "trailer"
                    else:
                        self._remaining = size
                        self._mode = "chunk-data"
            else:
                rest = memoryview(bytes(self._buffer))
                self._buffer.clear()
                return rest

    def _start(self, first: str, headers: dict[str, str]) -> None:
        status = int(first.split(" ", 2)[1])
        if status == 100:
            return
        exchange = self._pending.popleft() if self._pending else Exchange("?", "?", 0.0)
        exchange.status = status
        exchange.first_byte = time.monotonic()
        self._current = exchange
        length = headers.get("content-length")
        if exchange.method == "HEAD" or status in (204, 304):
            self._finish(True)
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            self._mode = "chunk-size"
        elif length is not None:
            exchange.expected = int(length)
            self._remaining = int(length)
            self._mode = "length"
            if self._remaining == 0:
                self._finish(True)
        else:
            self._mode = "close"

    def _finish(self, complete: bool) -> None:
        if self._current is not None and not self._current.finished:
            self._current.complete = complete
            self._current.finished = time.monotonic()
        self._current = None
        self._mode = "head"

    def closed(self) -> None:
        """The connection ended: a body read to close is complete, any other is cut."""
        self._finish(self._mode == "close")
        while self._pending:
            exchange = self._pending.popleft()
            exchange.finished = time.monotonic()


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                count: Callable[[int], None], feed: Callable[[bytes], None]) -> None:
    try:
        while data := await reader.read(READ_SIZE):
            count(len(data))
            feed(data)
            writer.write(data)
            await writer.drain()
    except (ConnectionError, ValueError):
        pass
    finally:
        with contextlib.suppress(OSError, RuntimeError):
            writer.close()


class Proxy:
    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.ledger = Ledger()

    async def handle(self, client_reader: asyncio.StreamReader,
                     client_writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(
                HOST, self.upstream_port, limit=READ_SIZE)
        except OSError:
            client_writer.close()
            return
        self.ledger.connections += 1
        pending: deque[Exchange] = deque()
        requests = RequestParser(self.ledger, pending)
        responses = ResponseParser(pending)
        try:
            await asyncio.gather(
                _pump(client_reader, upstream_writer, self.ledger.count_up, requests.feed),
                _pump(upstream_reader, client_writer, self.ledger.count_down, responses.feed))
        finally:
            responses.closed()

    async def control(self) -> None:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while line := await reader.readline():
            command = line.decode().strip()
            if command == "stats":
                answer = json.dumps(self.ledger.snapshot())
            elif command == "reset":
                self.ledger.reset()
                answer = "{}"
            else:
                answer = json.dumps({"error": f"unknown command {command!r}"})
            sys.stdout.write(answer + "\n")
            sys.stdout.flush()


async def main(listen_port: int, upstream_port: int) -> None:
    proxy = Proxy(upstream_port)
    server = await asyncio.start_server(proxy.handle, HOST, listen_port, limit=READ_SIZE)
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    async with server:
        await proxy.control()  # stdin closed: the benchmark is gone


if __name__ == "__main__":
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2])))
