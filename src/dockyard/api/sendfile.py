"""File responses whose body a worker thread sends: `os.sendfile`, or a copy to loopback peers.

uvloop has no `loop.sendfile`, so aiohttp's FileResponse reads the file into Python and
writes it through the transport (two copies and a thread hop per piece). Here everything
up to the body is still aiohttp's FileResponse - conditional requests, Range and If-Range,
416, HEAD, Content-Length - and only its final step, sending `count` bytes from `offset`,
is replaced: once the status line and headers have left the transport's buffer, a worker
thread calls `os.sendfile` on a duplicate of the socket's descriptor, waiting in `poll()`
whenever the non-blocking socket is full. The event loop only awaits that thread.

Why it is safe:
- Nothing else writes to the socket meanwhile: the transport's buffer is empty and aiohttp
  writes nothing on a connection until the handler's response is finished.
- The thread owns duplicated descriptors and closes them itself, so a connection or file
  closed under it (client gone, handler cancelled) can never make it write to a reused
  descriptor number; it stops at its next check once told to.
- Any failure after the headers left raises ConnectionResetError, which aiohttp treats as
  a premature disconnect: the connection is closed, never reused half-written.
- TLS, a transport without a real socket, or all threads busy: aiohttp's copying path.

To a loopback peer (a proxy or a client on the same host) the thread copies through a
buffer instead (pread, then write): the receiver then copies bytes that were just written,
still in the CPU's cache, where after sendfile it reads them from page-cache pages. Measured
with the bench's client on one 2-vCPU machine: 3.4-3.6 GB/s against 2.4 GB/s (and far
steadier). Over a real network sendfile's zero copy is what counts.

`FileResponse._sendfile` is aiohttp's own seam for exactly this step (its default calls
`loop.sendfile`); mypy checks this override against the installed aiohttp. Were a later
aiohttp to drop the seam, this class would quietly be a plain FileResponse again.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import logging
import mmap
import os
import select
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import IO, Any

from aiohttp import web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.web_fileresponse import NOSENDFILE

from dockyard.storage.buffers import BufferPool

log = logging.getLogger("dockyard.api.sendfile")

MAX_THREADS = 256
"""Transfers in flight at once per process; more take aiohttp's copying path instead, so
clients that stop reading can hold threads but never starve other downloads."""
_CALL_BYTES = 16 << 20
"""At most this much per sendfile call, so a stop request is seen within one call."""
_POLL_MS = 200
"""How long one wait for a writable socket lasts before the stop flag is checked again."""
_FLUSH_WAIT_MAX = 0.05
COPY_BUFFER = 1 << 20
"""Bytes per pread and write when copying a large body to a loopback peer: 256 KiB reached
3.4 GB/s, 1 MiB 3.6 (and 1.2x the Go registry in the bench, where 256 KiB was even with it)."""
SMALL_COPY_BUFFER = 256 << 10
"""The buffer for bodies under LARGE_BODY: with many small downloads at once the buffers are
what the process grows by (16 x 1 MiB showed as 15 MiB more peak RSS in the bench)."""
LARGE_BODY = 8 << 20
IDLE_BUFFERS = 4
"""Copy buffers of each size a process keeps for the next transfer (storage/buffers.py)."""
COPY_BUDGET = 32 << 20
"""Copy buffers in use at once per process; past it a loopback download is sent with
sendfile, so many slow local clients cannot make the process grow by a buffer each."""


class SendfileResponse(web.FileResponse):
    """A FileResponse that sends its body with `os.sendfile` where the connection allows.

    With `whole`, the request's Range header is not looked at: the whole file is sent.
    """

    def __init__(self, path: str | os.PathLike[str], *args: Any, whole: bool = False,
                 **kwargs: Any) -> None:
        super().__init__(path, *args, **kwargs)
        self._whole = whole

    async def prepare(self, request: web.BaseRequest) -> AbstractStreamWriter | None:
        if self._whole:
            request = request.clone(headers=[
                (key, value) for key, value in request.headers.items()
                if key.lower() != "range"])
        return await super().prepare(request)

    async def _sendfile(self, request: web.BaseRequest, fobj: IO[Any], offset: int,
                        count: int) -> AbstractStreamWriter:
        transport = request.transport
        sock = _plain_socket(transport)
        if sock is None or transport is None or NOSENDFILE or self.compression \
                or _threads.busy >= MAX_THREADS:
            return await super()._sendfile(request, fobj, offset, count)
        descriptors = _duplicate(sock, fobj)
        if descriptors is None:  # out of descriptors: copying still works
            return await super()._sendfile(request, fobj, offset, count)
        copy = _is_loopback(transport)
        _threads.busy += 1
        try:
            try:
                writer = await web.StreamResponse.prepare(self, request)
                assert writer is not None
                await _flushed(transport)
            except BaseException:
                _close(descriptors)
                raise
            sent = await _threads.send(descriptors, offset, count, copy)
        except ConnectionError:
            raise
        except OSError as exc:
            log.warning("blob file transfer failed: %s", exc)
            raise ConnectionResetError(f"blob file transfer failed: {exc}") from exc
        finally:
            _threads.busy -= 1
        writer.output_size += sent  # what the access log and metrics report as sent
        await self.write_eof()
        return writer


class _Threads:
    """The worker threads of one process, made on first use (in the worker, after spawn)."""

    def __init__(self) -> None:
        self.busy = 0  # changed on the event loop only
        self._pool: ThreadPoolExecutor | None = None

    async def send(self, descriptors: tuple[int, int], offset: int, count: int,
                   copy: bool) -> int:
        """Run `_send` in a thread; the thread owns `descriptors` from here on."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(MAX_THREADS, thread_name_prefix="dockyard-sendfile")
        stop = threading.Event()
        try:
            work = self._pool.submit(_send, *descriptors, offset, count, stop, copy)
        except BaseException:
            _close(descriptors)
            raise
        try:
            # Shielded: a cancelled handler must not cancel work not yet started, which would
            # then never run to close its descriptors.
            return await asyncio.shield(asyncio.wrap_future(work))
        except BaseException:
            stop.set()  # cancelled or failed: the thread stops at its next check
            raise


_threads = _Threads()


def _duplicate(sock: socket.socket, fobj: IO[Any]) -> tuple[int, int] | None:
    """Own descriptors for the socket and the file, or None when none are left."""
    try:
        socket_fd = os.dup(sock.fileno())
    except OSError:
        return None
    try:
        return socket_fd, os.dup(fobj.fileno())
    except OSError:
        os.close(socket_fd)
        return None


def _close(descriptors: tuple[int, int]) -> None:
    for fd in descriptors:
        os.close(fd)


def _plain_socket(transport: asyncio.BaseTransport | None) -> socket.socket | None:
    """The socket under a plain (not TLS) stream transport, or None."""
    if transport is None or transport.is_closing():
        return None
    if (transport.get_extra_info("ssl_object") is not None
            or transport.get_extra_info("sslcontext") is not None):
        return None
    sock = transport.get_extra_info("socket")
    if sock is None or getattr(sock, "type", None) != socket.SOCK_STREAM:
        return None
    return sock  # type: ignore[no-any-return]


def _is_loopback(transport: asyncio.BaseTransport) -> bool:
    peer = transport.get_extra_info("peername")
    try:
        return ipaddress.ip_address(peer[0]).is_loopback
    except (TypeError, IndexError, ValueError):
        return False


async def _flushed(transport: asyncio.Transport) -> None:
    """Wait until the headers (and anything before them) have left the transport."""
    delay = 0.0005
    while transport.get_write_buffer_size():
        if transport.is_closing():
            break
        await asyncio.sleep(delay)
        delay = min(delay * 2, _FLUSH_WAIT_MAX)
    if transport.is_closing():
        raise ConnectionResetError("connection lost before the body")


_buffers = BufferPool(IDLE_BUFFERS, COPY_BUDGET)


class _BufferedCopy:
    """Sends a file through a buffer (taken from `_buffers`): pread, then write what the
    socket takes."""

    def __init__(self, file_fd: int, buffer: mmap.mmap) -> None:
        self._file_fd = file_fd
        self._map = buffer
        self._buffer = memoryview(self._map)
        self._pending = self._buffer[:0]
        """Read from the file at the caller's offset and not sent yet."""

    def close(self) -> None:
        self._pending.release()
        self._buffer.release()
        _buffers.give_back(self._map)

    def send(self, socket_fd: int, offset: int, end: int) -> int:
        if not self._pending:
            read = os.preadv(self._file_fd, [self._buffer[: end - offset]], offset)
            self._pending = self._buffer[:read]
            if not read:
                return 0
        sent = os.write(socket_fd, self._pending)
        self._pending = self._pending[sent:]
        return sent


def _send(socket_fd: int, file_fd: int, offset: int, count: int,
          stop: threading.Event, copy: bool) -> int:
    """Send `count` bytes of the file from `offset`; runs in a worker thread.

    Takes ownership of both descriptors. Raises ConnectionError when the client is gone or
    the transfer was cancelled, another OSError when the file fails or is too short.
    """
    copier: _BufferedCopy | None = None
    try:
        # A blob not in the page cache is read from disk as it goes: twice the readahead
        # keeps the disk busy while the socket drains (a cold 256 MiB file reached about
        # 1.06 GB/s instead of 0.85 copied, 0.73 by sendfile, on a VM's disk).
        os.posix_fadvise(file_fd, offset, count, os.POSIX_FADV_SEQUENTIAL)
        poller = select.poll()
        poller.register(socket_fd, select.POLLOUT)
        buffer = (_buffers.take(COPY_BUFFER if count >= LARGE_BODY else SMALL_COPY_BUFFER)
                  if copy else None)
        copier = _BufferedCopy(file_fd, buffer) if buffer is not None else None
        end = offset + count
        while offset < end:
            if stop.is_set():
                raise ConnectionAbortedError("transfer cancelled")
            try:
                if copier is not None:
                    sent = copier.send(socket_fd, offset, end)
                else:
                    sent = os.sendfile(socket_fd, file_fd, offset,
                                       min(end - offset, _CALL_BYTES))
            except BlockingIOError:
                events = poller.poll(_POLL_MS)
                if events and not events[0][1] & select.POLLOUT:
                    raise ConnectionResetError("connection closed by the client") from None
                continue
            if sent == 0:  # not the client's doing: logged by the caller
                raise OSError(errno.EIO, f"file ends at {offset}, before {end}")
            offset += sent
        return count
    finally:
        if copier is not None:
            copier.close()
        _close((socket_fd, file_fd))
