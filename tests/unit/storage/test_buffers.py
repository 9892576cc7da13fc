"""The pool of anonymous mappings that uploads and loopback downloads copy through."""

from __future__ import annotations

import ctypes
import mmap
import threading

from dockyard.storage.buffers import BufferPool

SIZE = 64 * 1024


def test_a_budget_caps_what_is_handed_out_at_once() -> None:
    pool = BufferPool(idle=4, budget=3 * SIZE)
    taken = [pool.take(SIZE) for _ in range(3)]
    assert all(buffer is not None and len(buffer) == SIZE for buffer in taken)
    assert pool.take(SIZE) is None  # spent: the caller does without a buffer
    first = taken[0]
    assert first is not None
    pool.give_back(first)
    assert pool.take(SIZE) is first  # an idle mapping, not a new one


def test_without_a_budget_buffers_keep_coming_and_only_idle_ones_are_kept() -> None:
    pool = BufferPool(idle=2)
    taken = [pool.take(SIZE) for _ in range(5)]
    buffers = [buffer for buffer in taken if buffer is not None]
    assert len(buffers) == 5
    for buffer in buffers:
        pool.give_back(buffer)
    assert [buffer.closed for buffer in buffers] == [False, False, True, True, True]


def test_mappings_are_page_aligned_as_direct_io_needs() -> None:
    pool = BufferPool(idle=1)
    for size in (SIZE, 3 * SIZE + 1):
        buffer = pool.take(size)
        assert buffer is not None
        view = ctypes.c_char.from_buffer(buffer)
        assert ctypes.addressof(view) % mmap.PAGESIZE == 0
        del view  # releases the export, or the mapping could not be closed
        pool.give_back(buffer)


def test_threads_share_a_pool_and_give_everything_back() -> None:
    pool = BufferPool(idle=8, budget=16 * SIZE)
    errors: list[BaseException] = []

    def churn() -> None:
        try:
            for _ in range(200):
                buffer = pool.take(SIZE) or pool.take(2 * SIZE)
                if buffer is not None:
                    buffer[:4] = b"used"
                    pool.give_back(buffer)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=churn) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert pool.take(16 * SIZE) is not None  # everything came back: the whole budget is free
