"""What the mirror reports as it works, for metrics; observability implements it."""

from __future__ import annotations

from typing import Protocol


class MirrorObserver(Protocol):
    """Counts per upstream (its name) and kind of content ("manifest" or "blob")."""

    def hit(self, upstream: str, kind: str) -> None:
        """Served from the cache without asking the upstream."""
        ...

    def miss(self, upstream: str, kind: str) -> None:
        """Fetched from the upstream (once, for every request that waited for it)."""
        ...

    def coalesced(self, upstream: str, kind: str) -> None:
        """A request that waited for another's fetch instead of fetching itself."""
        ...

    def stale(self, upstream: str) -> None:
        """A cached tag served because the upstream could not be asked."""
        ...

    def upstream_bytes(self, upstream: str, size: int) -> None:
        """Bytes read from the upstream."""
        ...

    def upstream_error(self, upstream: str, error: str) -> None:
        """A failed upstream request, by the kind of failure."""
        ...

    def upstream_latency(self, upstream: str, seconds: float) -> None:
        """Time until the upstream answered (headers, for blobs)."""
        ...


class SilentObserver:
    """The observer when metrics are off."""

    def hit(self, upstream: str, kind: str) -> None:
        pass

    def miss(self, upstream: str, kind: str) -> None:
        pass

    def coalesced(self, upstream: str, kind: str) -> None:
        pass

    def stale(self, upstream: str) -> None:
        pass

    def upstream_bytes(self, upstream: str, size: int) -> None:
        pass

    def upstream_error(self, upstream: str, error: str) -> None:
        pass

    def upstream_latency(self, upstream: str, seconds: float) -> None:
        pass
