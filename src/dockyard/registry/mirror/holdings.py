"""What one upstream's cache holds, when prefixes nest.

`MirrorStore` counts by repository-name prefix, and a prefix takes in every repository under
it: the catch-all ("") all of them, `mirror` those of `mirror/quay` too. An upstream holds
only the repositories that route to it, so what the upstreams nested under its prefix hold
is taken out.
"""

from __future__ import annotations

from datetime import datetime

from dockyard.metadata.interfaces import MirrorStore
from dockyard.metadata.records import CachedImage
from dockyard.registry.mirror.routing import Routes, Upstream


def _under(inner: str, outer: str) -> bool:
    """Whether every repository under prefix `inner` is also under prefix `outer`."""
    return inner != outer and (outer == "" or inner.startswith(outer + "/"))


def nested(routes: Routes, upstream: Upstream) -> list[Upstream]:
    """The upstreams whose prefixes lie under this one's, the outermost only (so no
    repository is counted twice)."""
    inside = [other for other in routes.upstreams if _under(other.prefix, upstream.prefix)]
    return [other for other in inside
            if not any(_under(other.prefix, middle.prefix) for middle in inside)]


def owns(routes: Routes, upstream: Upstream, repository: str) -> bool:
    route = routes.route(repository)
    return route is not None and route.upstream.prefix == upstream.prefix


async def held_bytes(routes: Routes, store: MirrorStore, upstream: Upstream) -> int:
    """The bytes cached for this upstream's repositories (blobs shared with a nested
    upstream's repositories count for both, so this may be a little low)."""
    total = await store.cached_bytes(upstream.prefix)
    for inner in nested(routes, upstream):
        total -= await store.cached_bytes(inner.prefix)
    return max(total, 0)


async def held_images(routes: Routes, store: MirrorStore, upstream: Upstream,
                      pulled_before: datetime | None, limit: int) -> list[CachedImage]:
    """Up to `limit` of this upstream's cached images (roots), least recently pulled first."""
    found: list[CachedImage] = []
    skipped = 0
    while True:
        wanted = limit + skipped
        page = await store.eviction_candidates(upstream.prefix, pulled_before, wanted)
        found = [image for image in page if owns(routes, upstream, image.repository)]
        skipped = len(page) - len(found)
        if len(found) >= limit or len(page) < wanted:
            return found[:limit]
