"""Calling an upstream: timed and counted, and its failures turned into what a client sees."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from dockyard.registry.errors import RegistryError, UpstreamFailed, UpstreamUnavailable
from dockyard.registry.mirror.observer import MirrorObserver
from dockyard.registry.mirror.remote import (
    RemoteError,
    RemoteInvalid,
    RemoteNotFound,
    RemoteRefused,
    RemoteUnavailable,
)
from dockyard.registry.mirror.routing import Upstream

T = TypeVar("T")

log = logging.getLogger("dockyard.mirror")

ERROR_KINDS: dict[type[RemoteError], str] = {
    RemoteNotFound: "not_found",
    RemoteUnavailable: "unavailable",
    RemoteRefused: "refused",
    RemoteInvalid: "invalid",
}


def error_kind(error: RemoteError) -> str:
    """The metric label of a failure."""
    for cls in type(error).__mro__:
        if cls in ERROR_KINDS:
            return ERROR_KINDS[cls]
    return "error"


async def call(upstream: Upstream, observer: MirrorObserver,
               operation: Callable[[], Awaitable[T]]) -> T:
    """Run one upstream request, reporting its latency or its failure."""
    started = time.monotonic()
    try:
        result = await operation()
    except RemoteError as exc:
        observer.upstream_error(upstream.name, error_kind(exc))
        raise
    observer.upstream_latency(upstream.name, time.monotonic() - started)
    return result


def client_error(upstream: Upstream, error: RemoteError) -> RegistryError:
    """What a client is told when the upstream failed and nothing cached answers.

    The upstream's own message goes to the log only: it names hosts, never credentials (the
    remote client keeps them out), but a client of the mirror has no use for it.
    """
    log.warning("upstream %s: %s", upstream.name, error)
    if isinstance(error, RemoteUnavailable):
        return UpstreamUnavailable(f"the upstream {upstream.name} cannot be reached and "
                                   "this is not cached")
    if isinstance(error, RemoteRefused):
        return UpstreamFailed(f"the upstream {upstream.name} refused the mirror's "
                              "credentials")
    return UpstreamFailed(f"the upstream {upstream.name} answered something unusable")
