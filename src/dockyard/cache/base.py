"""The cache port: generation-guarded entries, grouped in scopes that are dropped at once.

A reader takes the scope's generation with the entry; a writer bumps the generation after its
database commit. A reader fills an entry only if the generation is still the one it saw before
reading the database, so a value read before a concurrent write can never be cached after it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Lookup:
    """What a read found, and the generation a fill of the entry must name."""

    generation: str
    value: bytes | None


class Cache(ABC):
    """Bytes kept for hot lookups, shared by every node. tests/contract/cache/ holds every
    implementation, wrappers included, to this contract."""

    @abstractmethod
    async def get(self, scope: str, key: str) -> Lookup:
        """The entry (None on a miss) and the generation to fill it under."""

    @abstractmethod
    async def fill(self, scope: str, generation: str, key: str, value: bytes) -> None:
        """Store an entry, unless the scope moved past `generation` meanwhile: the value
        may have been read before a write, and must not outlive it."""

    @abstractmethod
    async def invalidate(self, scope: str) -> None:
        """Drop every entry of the scope, on every node, and refuse fills under the
        generations seen before (call it after the database commit that changed the scope)."""

    @abstractmethod
    async def invalidate_all(self) -> None:
        """Drop every entry of every scope, and refuse fills under the generations seen
        before (after bulk changes such as garbage collection)."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""
