"""One fetch shared by every request: single flights and the blob broadcast."""

from __future__ import annotations

import asyncio

import pytest

from dockyard.registry.mirror.flights import (
    Broadcast,
    DownloadFailed,
    ReaderDropped,
    SingleFlight,
)


async def _drain(reader: object) -> bytes:
    return b"".join([chunk async for chunk in reader])  # type: ignore[attr-defined]


def test_concurrent_calls_share_one_run() -> None:
    async def scenario() -> None:
        flight: SingleFlight[int] = SingleFlight()
        runs = 0

        async def fetch() -> int:
            nonlocal runs
            runs += 1
            await asyncio.sleep(0.05)
            return 7

        results = await asyncio.gather(*(flight.run("k", fetch) for _ in range(5)))
        assert runs == 1
        assert sorted(waited for _, waited in results) == [False, True, True, True, True]
        assert {value for value, _ in results} == {7}
        await flight.run("k", fetch)  # finished flights are not remembered
        assert runs == 2

    asyncio.run(scenario())


def test_a_failed_run_fails_every_waiter_and_the_next_call_runs_again() -> None:
    async def scenario() -> None:
        flight: SingleFlight[int] = SingleFlight()

        async def broken() -> int:
            await asyncio.sleep(0.01)
            raise ValueError("upstream said no")

        results = await asyncio.gather(*(flight.run("k", broken) for _ in range(3)),
                                       return_exceptions=True)
        assert all(isinstance(result, ValueError) for result in results)
        assert not flight.joined("k")

    asyncio.run(scenario())


def test_every_reader_gets_every_byte_and_the_last_only_once_verified() -> None:
    async def scenario() -> None:
        broadcast = Broadcast(size=None, window=1 << 20)
        readers = [asyncio.create_task(_drain(broadcast.reader())) for _ in range(3)]
        parts = [bytes([n]) * 1000 for n in range(50)]
        for part in parts:
            await broadcast.publish(part)
        await asyncio.sleep(0.01)
        assert not any(reader.done() for reader in readers)  # the last chunk is held back
        late = asyncio.create_task(_drain(broadcast.reader()))  # nothing trimmed yet: joins
        broadcast.finish()
        assert await asyncio.gather(*readers, late) == [b"".join(parts)] * 4

    asyncio.run(scenario())


def test_a_failed_download_ends_every_reader_short() -> None:
    async def scenario() -> None:
        broadcast = Broadcast(size=None)
        reader = asyncio.create_task(_drain(broadcast.reader()))
        await broadcast.publish(b"a" * 10)
        await broadcast.publish(b"b" * 10)
        broadcast.fail(ValueError("digest mismatch"))
        with pytest.raises(DownloadFailed):
            await reader
        with pytest.raises(ReaderDropped):
            broadcast.reader()

    asyncio.run(scenario())


def test_memory_stays_within_the_window_and_a_stuck_reader_is_dropped() -> None:
    async def scenario() -> None:
        window = 10_000
        broadcast = Broadcast(size=None, window=window, stall=0.2)
        stuck = broadcast.reader()  # joined, never read
        fast = asyncio.create_task(_drain(broadcast.reader()))
        for _ in range(100):
            await broadcast.publish(b"x" * 1000)
            assert broadcast._held <= window + 1000
        broadcast.finish()
        assert len(await fast) == 100_000
        with pytest.raises(ReaderDropped):
            await _drain(stuck)
        assert not broadcast.accepting  # it moved on: late readers go to the store

    asyncio.run(scenario())
