"""Appending to a staged upload without copying it through the page cache.

A staged blob is written once, flushed at commit and read (by sendfile) later, so buffered
writes mostly spend CPU copying every byte into newly allocated cache pages: about half of a
large upload's server CPU in the profile, plus a long fdatasync at commit. With O_DIRECT the
block-aligned middle of an append goes from an aligned bounce buffer straight to the device.
The bytes before the first block boundary and after the last one are written through the page
cache, which the kernel keeps coherent with direct I/O, so appends may start and end anywhere.
Where O_DIRECT is refused (tmpfs, some FUSE and network filesystems) every write is buffered.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import mmap
import os
from concurrent.futures import Future, ThreadPoolExecutor

from dockyard.storage.buffers import BufferPool

StrPath = str | os.PathLike[str]

BLOCK = max(4096, mmap.PAGESIZE)
"""Alignment of direct writes: offset, length and memory (covers 512 B and 4 KiB devices)."""
BUFFER = 2 << 20
"""Bytes per direct write."""
POOL_SIZE = 8
"""Idle bounce buffers a process keeps, so uploads reuse memory that is already mapped."""

_O_DIRECT: int = getattr(os, "O_DIRECT", 0)
"""0 where the platform has no O_DIRECT."""

IO_THREADS = 8
"""Direct writes in flight at once, across all uploads of a process."""

_buffers = BufferPool(POOL_SIZE)


@functools.cache
def _io_pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(IO_THREADS, thread_name_prefix="dockyard-direct-io")


def _take_buffer() -> mmap.mmap:
    buffer = _buffers.take(BUFFER)  # page aligned, as O_DIRECT needs
    assert buffer is not None  # the pool has no budget
    return buffer


def _open_direct(path: StrPath) -> int | None:
    if not _O_DIRECT:
        return None
    try:
        return os.open(path, os.O_WRONLY | _O_DIRECT)
    except OSError as exc:
        if exc.errno == errno.EINVAL:
            return None
        raise


def _write_all(fd: int, data: memoryview, position: int) -> None:
    while data:
        written = os.pwrite(fd, data, position)
        data = data[written:]
        position += written


class StagingWriter:
    """Appends to one staged file from `offset` on; used by one thread at a time.

    The file is cut to `offset` when the writer opens it; `finish` writes what is still
    buffered and returns the new size, `abandon` cuts the file back to `offset`. A full
    buffer is written by the I/O pool while the caller fills the next one, so the device and
    the CPU work at once; one write is in flight at most.
    """

    def __init__(self, path: StrPath, offset: int) -> None:
        self._fd = os.open(path, os.O_WRONLY)  # FileNotFoundError for a missing upload
        self._direct: int | None = None
        try:
            os.ftruncate(self._fd, offset)
            self._direct = _open_direct(path)
        except BaseException:
            os.close(self._fd)
            raise
        self._path = path
        self._closed = False
        self._offset = offset
        self._end = offset
        self._bypass = self._direct is not None
        self._buffer: mmap.mmap | None = None
        self._fill = 0
        self._unaligned = -offset % BLOCK
        """Bytes to write through the page cache before the end reaches a block boundary."""
        self._in_flight: Future[None] | None = None
        self._in_flight_buffer: mmap.mmap | None = None

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        if not self._bypass:
            _write_all(self._fd, view, self._end)
            self._end += len(view)
            return
        if self._unaligned:
            head = view[: self._unaligned]
            _write_all(self._fd, head, self._end)
            self._end += len(head)
            self._unaligned -= len(head)
            view = view[len(head):]
        while view:
            if self._fill == BUFFER:
                self._send()
            if self._buffer is None:
                self._buffer = _take_buffer()
            taken = min(BUFFER - self._fill, len(view))
            self._buffer[self._fill : self._fill + taken] = view[:taken]
            self._fill += taken
            self._end += taken
            view = view[taken:]

    def finish(self) -> int:
        """Write what is buffered, close the file and return its size."""
        self._wait()
        self._flush()
        self._close()
        return self._end

    def abandon(self) -> None:
        """Cut the file back to where this writer started (even after `finish`) and close it."""
        if self._closed:
            with contextlib.suppress(FileNotFoundError):
                os.truncate(self._path, self._offset)
            return
        try:
            with contextlib.suppress(OSError):
                self._wait()
            os.ftruncate(self._fd, self._offset)
        finally:
            self._close()

    def _send(self) -> None:
        """Hand the full buffer to the I/O pool, once the previous write is done."""
        self._wait()
        assert self._buffer is not None
        self._in_flight_buffer = self._buffer
        self._in_flight = _io_pool().submit(
            self._write_blocks, memoryview(self._buffer), self._end - self._fill
        )
        self._buffer = None
        self._fill = 0

    def _wait(self) -> None:
        work, buffer = self._in_flight, self._in_flight_buffer
        if work is None or buffer is None:
            return
        self._in_flight = self._in_flight_buffer = None
        try:
            work.result()
        finally:
            _buffers.give_back(buffer)

    def _flush(self) -> None:
        """Write the buffered whole blocks directly and any partial block through the cache."""
        buffer = self._buffer
        if buffer is None or not self._fill:
            return
        start = self._end - self._fill
        whole = self._fill - self._fill % BLOCK
        with memoryview(buffer) as view:
            self._write_blocks(view[:whole], start)
            _write_all(self._fd, view[whole : self._fill], start + whole)
        self._fill = 0

    def _write_blocks(self, data: memoryview, position: int) -> None:
        with data:
            if self._direct is not None:
                try:
                    _write_all(self._direct, data, position)
                    return
                except OSError as exc:
                    if exc.errno != errno.EINVAL:
                        raise
                    # The device wants a larger alignment than BLOCK: use the page cache.
                    os.close(self._direct)
                    self._direct = None
            _write_all(self._fd, data, position)

    def _close(self) -> None:
        self._closed = True
        if self._buffer is not None:
            _buffers.give_back(self._buffer)
            self._buffer = None
        if self._direct is not None:
            os.close(self._direct)
            self._direct = None
        os.close(self._fd)
