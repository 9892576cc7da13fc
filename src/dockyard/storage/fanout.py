"""A request body fanned out to consumer threads (hash, write) while the loop reads on.

hashlib and os.pwrite release the GIL, so while the event loop takes bytes off the socket one
thread hashes and another writes what came before, each at its own pace through its own
queue. Handing batches out from the loop instead left each thread idle until the loop came
back to it (the hashing thread sat idle 40% of a large upload). A consumer that falls `limit`
bytes behind makes the reading wait, so memory stays bounded whatever the size of the body.

A body of at most `small` bytes skips the threads: one hop of the default executor runs
every sink on it and then `finish`, which is cheaper than starting threads for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterable, Callable, Sequence
from queue import SimpleQueue
from typing import Any, Generic, TypeVar, cast

SMALL_BODY = 1 << 20
HANDOFF = 1 << 20
"""Chunks go to the threads in batches of about this many bytes: one wake-up per batch."""
LIMIT = 4 << 20
"""Bytes a consumer may lag behind the socket before the reading waits for it."""

Result = TypeVar("Result")
Sink = Callable[[bytes], None]


class _LastOut:
    """Runs `after` in the thread of whichever consumer ends last, if every one succeeded.

    That spares a hop to another thread after the last byte, which the answer waits on.
    """

    def __init__(self, consumers: int, after: Callable[[], None] | None) -> None:
        self._left = consumers
        self._failed = False
        self._lock = threading.Lock()
        self._after = after
        self.error: BaseException | None = None

    def arrive(self, succeeded: bool) -> None:
        with self._lock:
            self._left -= 1
            self._failed |= not succeeded
            if self._left or self._failed or self._after is None:
                return
        try:
            self._after()
        except BaseException as exc:  # re-raised on the reading side
            self.error = exc


class _Consumer(Generic[Result]):
    """A thread applying one sink to every chunk in order, then `then` if given, then
    arriving at `last_out`.

    After the sink fails the thread keeps taking chunks (and drops them) so the reading side
    never waits on it forever; the error is raised by the reading side.
    """

    def __init__(self, sink: Sink, loop: asyncio.AbstractEventLoop, limit: int,
                 last_out: _LastOut, then: Callable[[], Result] | None = None) -> None:
        self._sink = sink
        self._then = then
        self._last_out = last_out
        self.result: Result | None = None
        self._loop = loop
        self._limit = limit
        self._queue: SimpleQueue[tuple[list[bytes], int] | None] = SimpleQueue()
        self._lock = threading.Lock()
        self._lag = 0
        self._caught_up: asyncio.Future[None] | None = None
        self.error: BaseException | None = None
        self._abandoned = False
        self.stopped: asyncio.Future[None] = loop.create_future()
        name = f"dockyard-upload-{getattr(sink, '__name__', 'sink')}"
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def put(self, batch: list[bytes], size: int) -> asyncio.Future[None] | None:
        """Queue chunks; returns a future to await first when the thread lags too far."""
        with self._lock:
            self._lag += size
            if self._lag > self._limit and self._caught_up is None:
                self._caught_up = self._loop.create_future()
            waiter = self._caught_up
        self._queue.put((batch, size))
        return waiter

    def close(self, whole: bool) -> None:
        """No more chunks; unless the body came `whole`, skip what is queued and `then`."""
        self._abandoned = not whole
        self._queue.put(None)

    def _run(self) -> None:
        try:
            while (item := self._queue.get()) is not None:
                batch, size = item
                if self.error is None and not self._abandoned:
                    try:
                        for chunk in batch:
                            self._sink(chunk)
                    except BaseException as exc:  # re-raised on the reading side
                        self.error = exc
                self._consumed(size)
            if self._then is not None and self.error is None and not self._abandoned:
                try:
                    self.result = self._then()
                except BaseException as exc:
                    self.error = exc
            self._last_out.arrive(self.error is None and not self._abandoned)
        finally:
            self._wake(self.stopped)

    def _consumed(self, size: int) -> None:
        with self._lock:
            self._lag -= size
            waiter = self._caught_up
            if waiter is None or self._lag > self._limit // 2:
                return
            self._caught_up = None
        self._wake(waiter)

    def _wake(self, future: asyncio.Future[None]) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting
            self._loop.call_soon_threadsafe(_resolve, future)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _in_turn(sinks: Sequence[Sink], chunks: list[bytes], finish: Callable[[], Result],
             after: Callable[[], None] | None) -> Result:
    for sink in sinks:
        for chunk in chunks:
            sink(chunk)
    result = finish()
    if after is not None:
        after()
    return result


async def fan_out(chunks: AsyncIterable[bytes], sinks: Sequence[Sink],
                  finish: Callable[[], Result], after: Callable[[], None] | None = None,
                  small: int = SMALL_BODY, handoff: int = HANDOFF, limit: int = LIMIT
                  ) -> Result:
    """Give every chunk to every sink, in order; all off the loop. Returns `finish()`.

    Each sink runs in one thread, so it needs no locking. `finish` runs once the first sink
    has seen every chunk, in its thread, while the others may still be busy; `after` runs
    once every sink has seen every chunk and `finish` returned, in the thread that ended
    last (for a small body, in the same thread hop as the rest: a hop costs more than
    hashing a small body). Whatever happens (the body failing midway, a sink failing, this
    task being cancelled), no thread uses the sinks, `finish` or `after` any more when this
    returns or raises: the caller may cut the file back.
    """
    loop = asyncio.get_running_loop()
    body = aiter(chunks)
    head: list[bytes] = []
    size = 0
    async for chunk in body:
        head.append(chunk)
        size += len(chunk)
        if size > small:
            break
    else:
        return await _finished(loop.run_in_executor(None, _in_turn, sinks, head, finish, after))
    consumers: list[_Consumer[Any]] = []
    last_out = _LastOut(len(sinks), after)
    whole = False
    try:
        consumers.append(_Consumer(sinks[0], loop, limit, last_out, finish))
        consumers += [_Consumer(sink, loop, limit, last_out) for sink in sinks[1:]]
        await _give(consumers, head, size)
        batch: list[bytes] = []
        size = 0
        async for chunk in body:
            batch.append(chunk)
            size += len(chunk)
            if size >= handoff:
                await _give(consumers, batch, size)
                batch, size = [], 0
        await _give(consumers, batch, size)
        whole = True
    finally:
        for consumer in consumers:
            consumer.close(whole)
        await _stopped(consumers)
    for consumer in consumers:
        if consumer.error is not None:
            raise consumer.error
    if last_out.error is not None:
        raise last_out.error
    return cast(Result, consumers[0].result)


async def _give(consumers: list[_Consumer[Any]], batch: list[bytes], size: int) -> None:
    for consumer in consumers:
        if consumer.error is not None:
            raise consumer.error
        caught_up = consumer.put(batch, size)
        if caught_up is not None:
            await caught_up


async def _stopped(consumers: list[_Consumer[Any]]) -> None:
    """Wait until every thread has stopped, even while this task is being cancelled."""
    await _settled([consumer.stopped for consumer in consumers])


async def _finished(job: asyncio.Future[Result]) -> Result:
    """The job's result, waiting for it to end even if this task is cancelled meanwhile."""
    await _settled([job])
    return job.result()


async def _settled(futures: list[asyncio.Future[Result]]) -> None:
    """Wait until every future is done, even while this task is being cancelled."""
    interrupted = False
    while not all(future.done() for future in futures):
        try:
            await asyncio.wait(futures)
        except asyncio.CancelledError:
            interrupted = True
    if interrupted:
        raise asyncio.CancelledError
