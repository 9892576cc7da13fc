"""One upstream fetch per thing, however many requests want it at the same moment.

`SingleFlight` shares the result of one coroutine among every caller of the same key while it
runs (manifests: small, whole). `Broadcast` shares a blob download as it arrives: each reader
gets every chunk from the first, and the download waits for the slowest reader once it is a
window ahead of it, so memory stays bounded whatever the blob's size. The last chunk is held
back until the caller says the bytes verified: a reader of a corrupt or cut download sees its
connection end short, never a whole body of wrong bytes.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from typing import Generic, TypeVar

T = TypeVar("T")

WINDOW_BYTES = 32 << 20
"""How much of a download is kept: a reader joining late still starts from the first byte
until the download outgrows it, and the download waits once it is this far ahead of the
slowest reader."""
STALL_SECONDS = 60.0
"""A reader that takes nothing for this long is dropped, so one stuck client cannot hold up
every other reader of the same blob."""


class SingleFlight(Generic[T]):
    """Concurrent calls with one key share one run of the function."""

    def __init__(self) -> None:
        self._running: dict[Hashable, asyncio.Future[T]] = {}

    def joined(self, key: Hashable) -> bool:
        return key in self._running

    async def run(self, key: Hashable, function: Callable[[], Awaitable[T]]) -> tuple[T, bool]:
        """The function's result, and whether this call only waited for another's run."""
        running = self._running.get(key)
        if running is not None:
            return await asyncio.shield(running), True
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._running[key] = future
        try:
            result = await function()
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warning without waiters
            raise
        else:
            future.set_result(result)
            return result, False
        finally:
            del self._running[key]


class ReaderDropped(ConnectionError):
    """This reader fell so far behind that the download went on without it."""


class DownloadFailed(ConnectionError):
    """The download broke or did not verify: the reader's response must end short."""


class Broadcast:
    """One download, read by any number of readers, each from the first byte."""

    def __init__(self, size: int | None, window: int = WINDOW_BYTES,
                 stall: float = STALL_SECONDS) -> None:
        self.size = size
        self._window = window
        self._stall = stall
        self._chunks: list[bytes] = []
        self._first = 0
        """Index of `_chunks[0]` in the whole download (earlier ones every reader took)."""
        self._positions: dict[int, int] = {}
        """Each reader's next chunk index; -1 once it was dropped."""
        self._readers = 0
        self._held = 0
        self._open = True
        self._failure: BaseException | None = None
        self._changed = asyncio.Event()

    @property
    def accepting(self) -> bool:
        """Whether a new reader still gets the whole download from its first byte."""
        return self._first == 0 and self._failure is None

    def _signal(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def publish(self, chunk: bytes) -> None:
        """Add a chunk; waits while the slowest reader is a window behind."""
        self._chunks.append(chunk)
        self._held += len(chunk)
        self._trim()
        self._signal()
        while self._held > self._window:
            live = [at for at in self._positions.values() if at >= 0]
            slowest = min(live)
            try:
                await asyncio.wait_for(self._changed.wait(), self._stall)
            except TimeoutError:
                for reader, at in self._positions.items():
                    if at == slowest:
                        self._positions[reader] = -1  # told at its next read
            self._trim()

    def finish(self) -> None:
        """Every chunk is published and the bytes verified."""
        self._open = False
        self._signal()

    def fail(self, error: BaseException) -> None:
        """The download broke or did not verify: every reader ends short."""
        self._failure = error
        self._open = False
        self._chunks.clear()
        self._signal()

    def _trim(self) -> None:
        """Drop what every reader has taken, once more than a window is held."""
        live = [at for at in self._positions.values() if at >= 0]
        keep_from = min(live) if live else self._first + len(self._chunks)
        while self._held > self._window and self._first < keep_from and self._chunks:
            self._held -= len(self._chunks.pop(0))
            self._first += 1

    def reader(self) -> AsyncIterator[bytes]:
        """A new reader, from the first byte: join only while `accepting`."""
        if not self.accepting:
            raise ReaderDropped("the download has moved on")
        self._readers += 1
        reader = self._readers
        self._positions[reader] = 0
        return self._read(reader)

    async def _read(self, reader: int) -> AsyncIterator[bytes]:
        try:
            while True:
                at = self._positions[reader]
                if at < 0:
                    raise ReaderDropped("fell too far behind the download")
                if self._failure is not None:
                    raise DownloadFailed(str(self._failure)) from self._failure
                end = self._first + len(self._chunks)
                if at < end - (1 if self._open else 0):
                    chunk = self._chunks[at - self._first]
                    self._positions[reader] = at + 1
                    self._trim()
                    self._signal()
                    yield chunk
                elif not self._open:
                    return
                else:
                    await self._changed.wait()
        finally:
            self._positions.pop(reader, None)
            self._trim()
            self._signal()
