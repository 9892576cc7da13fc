"""`n` and `last` query parameters, and the `Link` header for the next page."""

from __future__ import annotations

from urllib.parse import urlencode

from aiohttp import web

from dockyard.api.numbers import parse_number
from dockyard.registry.errors import PaginationInvalid


def page_size(request: web.Request, default: int, maximum: int) -> int:
    text = request.query.get("n")
    if text is None:
        return default
    number = parse_number(text)
    if number is None:
        raise PaginationInvalid(detail={"n": text[:64]})
    return min(number, maximum)


def last_of(request: web.Request) -> str | None:
    last = request.query.get("last") or None
    if last is not None and not last.isprintable():
        raise PaginationInvalid("last must be printable text", detail={"last": last})
    return last


def next_link(path: str, limit: int, next_last: str | None, **extra: str) -> dict[str, str]:
    if next_last is None:
        return {}
    query = urlencode({**extra, "n": limit, "last": next_last})
    return {"Link": f'<{path}?{query}>; rel="next"'}
