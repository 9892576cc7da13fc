"""What an event reports about the request behind it: id, client, host, method, user."""

from __future__ import annotations

from aiohttp import web

from dockyard.api.appkeys import REGISTRY, URLS
from dockyard.api.auth import PRINCIPAL
from dockyard.api.middleware.responses import REQUEST_ID
from dockyard.auth.access import Principal
from dockyard.registry.events import EventContext


def _client_addr(request: web.Request) -> str:
    """host:port of the peer, as distribution reports it (not X-Forwarded-For)."""
    transport = request.transport
    peer = transport.get_extra_info("peername") if transport is not None else None
    if isinstance(peer, tuple) and len(peer) >= 2:
        host = str(peer[0])
        return f"[{host}]:{peer[1]}" if ":" in host else f"{host}:{peer[1]}"
    return request.remote or ""


def event_context(request: web.Request) -> EventContext | None:
    """None when no events are recorded, so requests pay nothing for notifications then."""
    if not request.app[REGISTRY].events.enabled:
        return None
    principal = request.get(PRINCIPAL)
    actor = principal.subject if isinstance(principal, Principal) else None
    urls = request.app[URLS]
    return EventContext(
        request_id=str(request.get(REQUEST_ID, "")),
        addr=_client_addr(request),
        host=request.host,
        method=request.method,
        useragent=request.headers.get("User-Agent", ""),
        actor=actor or "",
        base_url=urls.host or f"{request.scheme}://{request.host}",
    )


def pull_context(request: web.Request) -> EventContext | None:
    """Only a GET fetches content; HEAD is a check, not a pull."""
    return event_context(request) if request.method == "GET" else None
