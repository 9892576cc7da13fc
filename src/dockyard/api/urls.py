"""Where responses point clients: absolute URLs by default, as distribution does."""

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
        return f"{request.scheme}://{request.host}{path}"
