"""Bounded concurrency for the bulk commands (mirror warm, import, migration).

A blob's bytes are read, hashed and written in one chain of steps that leaves a core idle;
a few blobs at once keep both the disk and the hashing busy without flooding either.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar

T = TypeVar("T")

BLOBS_AT_ONCE = 4


async def for_each(items: Iterable[T], work: Callable[[T], Awaitable[object]],
                   limit: int = BLOBS_AT_ONCE) -> None:
    """`work` on every item, at most `limit` at a time; once all ended, the first failure
    (in item order) is raised, so none is left running behind an error."""
    gate = asyncio.Semaphore(limit)

    async def one(item: T) -> None:
        async with gate:
            await work(item)

    outcomes = await asyncio.gather(*(one(item) for item in items), return_exceptions=True)
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome
