"""The transfer thread of api/sendfile.py on its own: both ways of sending, over a socket pair.

Through the server, downloads in tests come from loopback and take the copying way; the
sendfile way (remote peers) is checked here with the same function the server calls.
"""

from __future__ import annotations

import errno
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dockyard.api import sendfile
from dockyard.api.sendfile import (
    COPY_BUFFER,
    LARGE_BODY,
    SMALL_COPY_BUFFER,
    _is_loopback,
    _send,
)
from dockyard.storage.buffers import BufferPool

SIZE = LARGE_BODY + COPY_BUFFER // 2  # several large buffers, the last one partial


@pytest.fixture
def blob(tmp_path: Path) -> tuple[Path, bytes]:
    data = os.urandom(SIZE)
    path = tmp_path / "blob"
    path.write_bytes(data)
    return path, data


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    sender, receiver = socket.socketpair()
    sender.setblocking(False)  # as the event loop's sockets are
    sender.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)  # forces waiting
    yield sender, receiver
    sender.close()
    receiver.close()


def _receive(receiver: socket.socket, into: list[bytes]) -> threading.Thread:
    def run() -> None:
        while chunk := receiver.recv(1 << 20):
            into.append(chunk)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("copy", [False, True], ids=["sendfile", "copy"])
@pytest.mark.parametrize(("offset", "count"), [
    (0, SIZE), (1000, SIZE - 2000), (5, 3 * SMALL_COPY_BUFFER + 7), (7, 1)])
def test_sends_exactly_the_range(blob: tuple[Path, bytes], pair: tuple[socket.socket, ...],
                                 copy: bool, offset: int, count: int) -> None:
    path, data = blob
    sender, receiver = pair
    received: list[bytes] = []
    reader = _receive(receiver, received)
    sent = _send(os.dup(sender.fileno()), os.open(path, os.O_RDONLY), offset, count,
                 threading.Event(), copy)
    sender.close()  # the thread closed its own duplicate: this ends the stream
    reader.join(10)
    assert sent == count
    assert b"".join(received) == data[offset:offset + count]


@pytest.mark.parametrize("copy", [False, True], ids=["sendfile", "copy"])
def test_a_file_shorter_than_promised_is_an_error(blob: tuple[Path, bytes],
                                                  pair: tuple[socket.socket, ...],
                                                  copy: bool) -> None:
    path, data = blob
    sender, receiver = pair
    received: list[bytes] = []
    reader = _receive(receiver, received)
    with pytest.raises(OSError) as raised:
        _send(os.dup(sender.fileno()), os.open(path, os.O_RDONLY), SIZE - 10, 20,
              threading.Event(), copy)
    assert raised.value.errno == errno.EIO
    sender.close()
    reader.join(10)
    assert b"".join(received) == data[-10:]  # what there was, then the error


@pytest.mark.parametrize("copy", [False, True], ids=["sendfile", "copy"])
def test_a_stopped_transfer_ends_and_closes_its_descriptors(
        blob: tuple[Path, bytes], pair: tuple[socket.socket, ...], copy: bool) -> None:
    path, _data = blob
    sender, _receiver = pair  # nobody reads: the transfer waits for a writable socket
    stop = threading.Event()
    socket_fd, file_fd = os.dup(sender.fileno()), os.open(path, os.O_RDONLY)
    timer = threading.Timer(0.3, stop.set)
    timer.start()
    with pytest.raises(ConnectionAbortedError):
        _send(socket_fd, file_fd, 0, SIZE, stop, copy)
    for fd in (socket_fd, file_fd):
        with pytest.raises(OSError):
            os.fstat(fd)


class _Transport:
    def __init__(self, peer: Any) -> None:
        self._peer = peer

    def get_extra_info(self, name: str) -> Any:
        return self._peer if name == "peername" else None


@pytest.mark.parametrize(("peer", "loopback"), [
    (("127.0.0.1", 5000), True), (("127.8.9.10", 1), True), (("::1", 5000, 0, 0), True),
    (("10.0.0.7", 5000), False), (("2001:db8::1", 5000, 0, 0), False), (None, False),
    ("/run/dockyard.sock", False),
])
def test_loopback_peers_are_told_apart(peer: Any, loopback: bool) -> None:
    assert _is_loopback(_Transport(peer)) is loopback  # type: ignore[arg-type]


def test_a_loopback_transfer_past_the_budget_still_arrives_whole(
        blob: tuple[Path, bytes], pair: tuple[socket.socket, ...],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sendfile, "_buffers", BufferPool(idle=0, budget=0))
    path, data = blob
    sender, receiver = pair
    received: list[bytes] = []
    reader = _receive(receiver, received)
    assert _send(os.dup(sender.fileno()), os.open(path, os.O_RDONLY), 0, SIZE,
                 threading.Event(), True) == SIZE
    sender.close()
    reader.join(10)
    assert b"".join(received) == data
