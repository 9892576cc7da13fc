"""IN (...) lists cut to a size every engine accepts."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

T = TypeVar("T")

IN_CHUNK = 500
"""Values per IN (...) list: well below SQLite's and asyncpg's bound-parameter limits."""


def in_chunks(items: Sequence[T], size: int = IN_CHUNK) -> Iterable[Sequence[T]]:
    """`items` in consecutive slices of at most `size`."""
    for start in range(0, len(items), size):
        yield items[start:start + size]


async def present(engine: AsyncEngine, column: Any, values: Sequence[str]) -> set[str]:
    """Which of `values` occur in `column`, asked a chunk at a time."""
    found: set[str] = set()
    async with engine.connect() as connection:
        for chunk in in_chunks(list(values)):
            found |= set((await connection.scalars(
                select(column).where(column.in_(chunk))
            )).all())
    return found
