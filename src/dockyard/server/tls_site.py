"""The HTTPS listener: TLS connections go to the registry, plain HTTP ones get a 400.

Go's net/http answers plain HTTP sent to its TLS port with "HTTP/1.0 400 Bad Request" and
"Client sent an HTTP request to an HTTPS server."; a listener with an SSLContext would just
drop the connection. So this site accepts connections itself and peeks (MSG_PEEK) at the first
byte without reading it: a TLS handshake record (0x16) hands the untouched socket to the
event loop's own TLS (`connect_accepted_socket`, native in uvloop, so HTTPS bytes never pass
through Python); anything else gets Go's answer and is closed.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from collections.abc import Coroutine
from typing import Any

from aiohttp import web
from yarl import URL

log = logging.getLogger("dockyard.server.tls")

TLS_HANDSHAKE = 0x16
"""The content type of the first record a TLS client sends."""

FIRST_BYTE_TIMEOUT = 60.0
"""Seconds a new connection gets to send anything, as asyncio's TLS handshake timeout."""

PLAIN_HTTP_ANSWER = (b"HTTP/1.0 400 Bad Request\r\n\r\n"
                     b"Client sent an HTTP request to an HTTPS server.\n")
"""Go's net/http answer, byte for byte."""


def _listening_sockets(addresses: list[tuple[int, tuple[str, int]]], backlog: int
                       ) -> list[socket.socket]:
    sockets: list[socket.socket] = []
    try:
        for family, address in addresses:
            sock = socket.socket(family, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)  # workers share it
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.listen(backlog)
            sock.setblocking(False)
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    return sockets


async def _first_byte(sock: socket.socket) -> bytes:
    """The connection's first byte, left unread for whoever takes the socket next."""
    loop = asyncio.get_running_loop()
    readable: asyncio.Future[None] = loop.create_future()

    def on_readable() -> None:
        if not readable.done():
            readable.set_result(None)

    loop.add_reader(sock.fileno(), on_readable)
    try:
        await readable
    finally:
        loop.remove_reader(sock.fileno())
    return sock.recv(1, socket.MSG_PEEK)


class TlsSite(web.BaseSite):
    """Like `web.TCPSite` with an SSLContext and reuse_port, answering plain HTTP with 400."""

    __slots__ = ("_host", "_port", "_sockets", "_tasks")

    def __init__(self, runner: web.BaseRunner, host: str, port: int, *,
                 ssl_context: ssl.SSLContext, backlog: int) -> None:
        super().__init__(runner, ssl_context=ssl_context, backlog=backlog)
        self._host = host
        self._port = port
        self._sockets: list[socket.socket] = []
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def name(self) -> str:
        return str(URL.build(scheme="https", host=self._host, port=self._port))

    async def start(self) -> None:
        """Bind every address of the host (as asyncio's create_server), then accept."""
        await super().start()
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(self._host, self._port, type=socket.SOCK_STREAM,
                                       flags=socket.AI_PASSIVE)
        addresses = list(dict.fromkeys(
            (int(info[0]), (str(info[4][0]), int(info[4][1]))) for info in infos))
        self._sockets = _listening_sockets(addresses, self._backlog)
        for sock in self._sockets:
            self._spawn(self._accept(sock))

    async def stop(self) -> None:
        """Stop accepting and drop connections not yet handed on; handed ones stay open."""
        for task in list(self._tasks):
            task.cancel()
        for sock in self._sockets:
            sock.close()
        self._sockets = []
        await super().stop()

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _accept(self, listening: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                connection, _ = await loop.sock_accept(listening)
            except OSError as exc:  # e.g. EMFILE: keep accepting once descriptors free up
                log.warning("accept failed: %s", exc)
                await asyncio.sleep(0.1)
                continue
            self._spawn(self._route(connection))

    async def _route(self, connection: socket.socket) -> None:
        try:
            async with asyncio.timeout(FIRST_BYTE_TIMEOUT):
                first = await _first_byte(connection)
        except (OSError, TimeoutError) as exc:
            log.debug("connection dropped before its first byte: %s", exc)
            first = b""
        except asyncio.CancelledError:  # the site is stopping
            connection.close()
            raise
        if first == bytes([TLS_HANDSHAKE]):
            await self._hand_to_tls(connection)
            return
        with connection:
            if first:  # empty: the client closed without a word
                await self._refuse_plain_http(connection)

    async def _hand_to_tls(self, connection: socket.socket) -> None:
        """From here the loop owns the socket: a failed handshake closes it."""
        server = self._runner.server
        assert server is not None and self._ssl_context is not None  # set before start
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            await asyncio.get_running_loop().connect_accepted_socket(
                server, connection, ssl=self._ssl_context)
        except (OSError, ssl.SSLError) as exc:
            log.debug("TLS handshake failed: %s", exc)

    @staticmethod
    async def _refuse_plain_http(connection: socket.socket) -> None:
        try:
            connection.recv(65536)  # the request: left unread, closing would reset
            await asyncio.get_running_loop().sock_sendall(connection, PLAIN_HTTP_ANSWER)
            connection.shutdown(socket.SHUT_WR)
        except OSError as exc:
            log.debug("plain HTTP client went away: %s", exc)
