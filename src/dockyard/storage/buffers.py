"""Anonymous memory mappings kept for reuse, for the threads that copy and write blob bytes.

A mapping is page aligned, which O_DIRECT needs, and goes back to the kernel when closed:
freed malloc blocks of a megabyte stayed in the threads' arenas and the process kept them.
Mapping and unmapping one per request cost page faults and, unmapping, a TLB flush on every
CPU, so a few idle ones are kept per size. A leaf module like `unavailable`: storage and the
HTTP layer both use it.
"""

from __future__ import annotations

import mmap
import threading


class BufferPool:
    """Mappings by size, at most `idle` kept per size; with a `budget`, at most that many
    bytes handed out at once. Safe to use from any thread."""

    def __init__(self, idle: int, budget: int | None = None) -> None:
        self._lock = threading.Lock()
        self._idle: dict[int, list[mmap.mmap]] = {}
        self._keep = idle
        self._budget = budget
        self._in_use = 0

    def take(self, size: int) -> mmap.mmap | None:
        """A mapping of `size` bytes, or None while the budget is spent."""
        with self._lock:
            if self._budget is not None and self._in_use + size > self._budget:
                return None
            self._in_use += size
            idle = self._idle.get(size)
            if idle:
                return idle.pop()
        return mmap.mmap(-1, size)

    def give_back(self, buffer: mmap.mmap) -> None:
        with self._lock:
            self._in_use -= len(buffer)
            idle = self._idle.setdefault(len(buffer), [])
            if len(idle) < self._keep:
                idle.append(buffer)
                return
        buffer.close()
