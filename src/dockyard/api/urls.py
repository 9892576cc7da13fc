"""Where responses point clients: absolute URLs by default, as distribution does.

Without `http.host`, the base URL is the request's own, as a reverse proxy in front reports
it through X-Forwarded-Proto and X-Forwarded-Host (first value, as distribution reads them):
a client can only steer the URLs in its own responses.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web


@dataclass(frozen=True, slots=True)
class UrlBuilder:
    host: str | None = None
    """The registry's external base URL (`http.host`); else taken from each request."""
    relative: bool = False

    def build(self, request: web.Request, path: str) -> str:
        if self.relative:
            return path
        if self.host:
            return self.host + path
        headers = request.headers
        scheme = _first(headers.get("X-Forwarded-Proto"))
        if scheme not in ("http", "https"):
            scheme = request.scheme
        host = _first(headers.get("X-Forwarded-Host")) or request.host
        return f"{scheme}://{host}{path}"


def _first(value: str | None) -> str | None:
    """The client-facing hop of a comma-separated forwarded header, if it is usable."""
    if not value:
        return None
    first = value.split(",", 1)[0].strip()
    return first if first and first.isprintable() and "/" not in first else None
