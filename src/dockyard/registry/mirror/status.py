"""How each upstream and its cache are doing, for `dockyard mirror status`."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime

from dockyard.metadata.interfaces import MirrorStore
from dockyard.registry.mirror.holdings import held_bytes, held_images
from dockyard.registry.mirror.remote import RemoteError
from dockyard.registry.mirror.routing import Routes, Upstream

PING_TIMEOUT = 5.0
"""Seconds an upstream has to answer /v2/ before it counts as unreachable."""
IMAGES_COUNTED = 100_000
"""Cached images counted per upstream; a status never reads more."""


@dataclass(frozen=True, slots=True)
class UpstreamStatus:
    name: str
    prefix: str
    host: str
    reachable: bool
    error: str | None
    """Why the ping failed: the client's message, which never holds credentials."""
    cached_bytes: int
    images: int
    last_pulled: datetime | None
    tag_ttl: float
    max_age: float | None
    max_bytes: int | None


async def ping(upstream: Upstream, timeout: float = PING_TIMEOUT) -> str | None:
    """None when the upstream serves us (/v2/ with our credentials), else why not."""
    try:
        await asyncio.wait_for(upstream.remote.ping(), timeout)
    except TimeoutError:
        return f"no answer within {timeout:g}s"
    except RemoteError as exc:
        return str(exc) or type(exc).__name__
    return None


async def upstream_status(routes: Routes, store: MirrorStore, upstream: Upstream,
                          timeout: float = PING_TIMEOUT) -> UpstreamStatus:
    """The upstream's reachability (one ping) and what its cache holds."""
    error = await ping(upstream, timeout)
    images = await held_images(routes, store, upstream, None, IMAGES_COUNTED)
    pulls = [image.last_pulled_at for image in images if image.last_pulled_at is not None]
    return UpstreamStatus(
        name=upstream.name, prefix=upstream.prefix, host=upstream.remote.host,
        reachable=error is None, error=error,
        cached_bytes=await held_bytes(routes, store, upstream), images=len(images),
        last_pulled=max(pulls) if pulls else None, tag_ttl=upstream.tag_ttl,
        max_age=upstream.max_age, max_bytes=upstream.max_bytes)


async def mirror_status(routes: Routes, store: MirrorStore,
                        timeout: float = PING_TIMEOUT) -> list[UpstreamStatus]:
    """Every upstream's status, the pings sent at once."""
    return list(await asyncio.gather(*(upstream_status(routes, store, upstream, timeout)
                                       for upstream in routes.upstreams)))
