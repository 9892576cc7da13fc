"""Typed keys for what the application object carries."""

from __future__ import annotations

from aiohttp import web

from dockyard.api.urls import UrlBuilder
from dockyard.registry.registry import Registry

REGISTRY = web.AppKey("registry", Registry)
URLS = web.AppKey("urls", UrlBuilder)
RESPONSE_HEADERS = web.AppKey("response_headers", tuple)
"""(name, value) pairs every response carries (`http.headers`)."""
