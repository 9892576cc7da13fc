"""Fanning a body out to consumer threads: order, bounded read-ahead, failures, cancellation."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator

import pytest

from dockyard.storage.fanout import fan_out

SMALL = 100
HANDOFF = 100
LIMIT = 1000
SIZES = {"small": SMALL, "handoff": HANDOFF, "limit": LIMIT}


async def _body(pieces: int, size: int = 50, fail_at: int | None = None,
                pulled: list[int] | None = None) -> AsyncIterator[bytes]:
    for index in range(pieces):
        if index == fail_at:
            raise ConnectionResetError("client went away")
        if pulled is not None:
            pulled.append(index)
        yield bytes([index % 256]) * size
        await asyncio.sleep(0)


class _Recorder:
    """A sink remembering what it saw, and from which thread."""

    def __init__(self) -> None:
        self.seen: list[bytes] = []
        self.threads: set[int] = set()

    def __call__(self, chunk: bytes) -> None:
        self.seen.append(chunk)
        self.threads.add(threading.get_ident())


def _expected(pieces: int, size: int = 50) -> list[bytes]:
    return [bytes([index % 256]) * size for index in range(pieces)]


@pytest.mark.parametrize("pieces", [0, 1, 2, 3, 40])
def test_every_sink_sees_every_chunk_in_order_then_finish_runs(pieces: int) -> None:
    async def scenario() -> None:
        first, second = _Recorder(), _Recorder()
        done: list[int] = []

        after: list[tuple[int, int]] = []

        def finish() -> str:
            done.append(len(first.seen))
            return "finished"

        result = await fan_out(_body(pieces), [first, second], finish,
                               lambda: after.append((len(done), len(second.seen))), **SIZES)
        assert result == "finished"
        assert first.seen == second.seen == _expected(pieces)
        assert done == [pieces]  # after the first sink saw everything
        assert after == [(1, pieces)]  # after finish, and after every sink saw everything
        assert threading.get_ident() not in first.threads | second.threads

    asyncio.run(scenario())


def test_a_large_body_is_consumed_by_one_thread_per_sink() -> None:
    async def scenario() -> None:
        first, second = _Recorder(), _Recorder()
        await fan_out(_body(40), [first, second], lambda: None, **SIZES)
        assert len(first.threads) == len(second.threads) == 1
        assert first.threads != second.threads

    asyncio.run(scenario())


def test_reading_waits_for_a_lagging_sink() -> None:
    async def scenario() -> None:
        gate = threading.Event()
        pulled: list[int] = []

        def slow(chunk: bytes) -> None:
            gate.wait()

        task = asyncio.create_task(
            fan_out(_body(100, pulled=pulled), [slow], lambda: None, **SIZES))
        try:
            for _ in range(200):
                await asyncio.sleep(0)
            # Blocked at its first chunk, the sink holds the reading to LIMIT bytes beyond
            # what it took, give or take a batch.
            assert len(pulled) * 50 <= SMALL + LIMIT + HANDOFF + 50
        finally:
            gate.set()
        await task
        assert len(pulled) == 100

    asyncio.run(scenario())


def test_a_failing_body_stops_the_threads_and_skips_finish() -> None:
    async def scenario() -> None:
        sink = _Recorder()
        finished: list[bool] = []
        with pytest.raises(ConnectionResetError):
            await fan_out(_body(40, fail_at=30), [sink], lambda: finished.append(True),
                          lambda: finished.append(False), **SIZES)
        seen = len(sink.seen)
        await asyncio.sleep(0.01)
        assert len(sink.seen) == seen <= 30  # nothing runs after fan_out returned
        assert finished == []

    asyncio.run(scenario())


def test_a_failing_sink_is_reported_and_skips_finish() -> None:
    async def scenario() -> None:
        finished: list[bool] = []
        healthy = _Recorder()

        def broken(chunk: bytes) -> None:
            if chunk[0] == 10:
                raise OSError(28, "No space left on device")

        with pytest.raises(OSError, match="No space left"):
            await fan_out(_body(40), [broken, healthy], lambda: finished.append(True),
                          lambda: finished.append(False), **SIZES)
        assert finished == []  # neither finish nor after

    asyncio.run(scenario())


def test_a_failing_finish_is_reported() -> None:
    async def scenario() -> None:
        def finish() -> None:
            raise OSError(5, "Input/output error")

        for pieces in (1, 40):  # in the single hop and after the threads
            with pytest.raises(OSError, match="Input/output"):
                await fan_out(_body(pieces), [_Recorder()], finish, **SIZES)

    asyncio.run(scenario())


def test_cancelling_waits_for_the_threads() -> None:
    async def scenario() -> None:
        entered = threading.Event()
        gate = threading.Event()
        returned = threading.Event()

        def slow(chunk: bytes) -> None:
            entered.set()
            gate.wait()
            returned.set()

        task = asyncio.create_task(
            fan_out(_body(100), [slow], lambda: None, **SIZES))
        try:
            while not entered.is_set():
                await asyncio.sleep(0.001)
            task.cancel()
            await asyncio.sleep(0.01)
            assert not task.done()  # the sink is still busy: cancelling must not leave it
        finally:
            gate.set()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert returned.is_set()

    asyncio.run(scenario())
